"""The README's promises that a test can hold it to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_blocks() -> list[tuple[str, str]]:
    """Every fenced block of the Quick start section, as (language, text)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.DOTALL | re.M)


def test_quick_start_is_two_commands() -> None:
    blocks = quick_start_blocks()

    shape = [(language, text.count("\n")) for language, text in blocks]
    assert shape == [("sh", 1), ("sh", 1)]
    last_steps = [text.split("&&")[-1].strip() for _, text in blocks]
    assert last_steps == ["python example_app.py", "python -m pytest"]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_command = quick_start_blocks()[1][1].rstrip("\n")

    commands = [line for line in ci_lines if line and not line.startswith("#")]
    assert [line for line in commands if "pytest" in line] == [test_command]
