"""The embedded server's benchmark runs and reports every command it measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "server_ops.py"


def test_server_ops_prints_ops_per_second_of_each_command() -> None:
    options = ["--seconds", "0.05", "--warmup", "0.05", "--threads", "2"]

    run = subprocess.run(
        [sys.executable, str(SCRIPT), *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["get", "put", "operate"]
    assert all(row[-1] == "ops/s" for row in rows)
    assert all(float(row[1].replace(",", "")) > 0 for row in rows)
