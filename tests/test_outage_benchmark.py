"""A smoke run of the outage benchmark: it runs, and its figures add up.

It steers the embedded server in its own process, so it skips on a real
cluster like the other fault-injection tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aerospike_wsgi_session.testing import AerospikeServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import outage


def test_a_quick_run_reports_every_phase_and_loses_nothing(
    aerospike_server: AerospikeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    [result] = outage.main(["--quick", "--policy", "raise", "--fault", "down"])

    printed = capsys.readouterr().out
    away = result.phase(result.fault_at, result.back_at)
    assert "ok" not in away and away["503"] > 0
    assert result.phase(0, result.fault_at)["ok"] > 0
    assert all(result.kept)
    assert sum(result.logged.values()) == sum(
        count for out, count in result.phase(0, float("inf")).items() if out != "ok"
    )
    for line in ("while away", "store errors by kind", "sessions intact: 4/4"):
        assert line in printed
