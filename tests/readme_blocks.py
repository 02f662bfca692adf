"""The README's code examples, pointed at the test backend, for tests to run."""

from __future__ import annotations

import re
from pathlib import Path

from .deployment import Backend

README = Path(__file__).resolve().parent.parent / "README.md"
README_HOSTS = "127.0.0.1:3000"


def readme_block(first_line: str) -> str:
    """The one README code block whose first line is ``first_line``."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```\w*\n(.*?)```", text, flags=re.DOTALL)
    found = [block for block in blocks if block.splitlines()[0] == first_line]
    assert len(found) == 1, f"{len(found)} README blocks start with {first_line!r}"
    return str(found[0])


def for_backend(code: str, backend: Backend) -> str:
    """An example with its hosts, namespace and set replaced by the tests' own."""
    assert README_HOSTS in code and "sessions" in code
    code = code.replace(README_HOSTS, backend.hosts_text)
    code = re.sub(r"(namespace\W+)test\b", rf"\g<1>{backend.namespace}", code)
    return re.sub(r"\bsessions\b", backend.set_name, code)


def write_example(
    directory: Path, first_line: str, backend: Backend | None = None
) -> Path:
    """Write a README example to the file its first line names.

    :param backend: where the example's sessions go, if it says.
    """
    name = first_line.removeprefix("# ").split(":")[0]
    code = readme_block(first_line)
    if backend is not None:
        code = for_backend(code, backend)
    path = directory / name
    path.write_text(code, encoding="utf-8")
    return path
