"""The README's framework examples run as written, on the test backend."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from .deployment import Backend
from .helpers import SECRET
from .readme_blocks import write_example


@pytest.mark.parametrize(
    ("first_line", "second_page"),
    [
        ("# pyramid_app.py", {"visits": 2, "flash": []}),
        ("# bottle_app.py", {"visits": 2}),
    ],
    ids=["pyramid", "bottle"],
)
def test_the_example_counts_visits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
    first_line: str,
    second_page: dict[str, Any],
) -> None:
    example = write_example(tmp_path, first_line, backend)
    monkeypatch.setenv("SESSION_SECRET", SECRET)

    browser = TestApp(runpy.run_path(str(example), run_name="example")["application"])
    browser.get("/")

    assert browser.get("/").json == second_page


def test_the_plain_wsgi_example_counts_visits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
) -> None:
    example = write_example(tmp_path, "# wsgi_app.py", backend)
    monkeypatch.setenv("SESSION_SECRET", SECRET)

    browser = TestApp(runpy.run_path(str(example), run_name="example")["application"])
    browser.get("/")

    assert browser.get("/").text == "visit number 2"
