"""The operator's command line, run for real against the test cluster.

Most tests call ``main(argv)`` in process and read what it printed; a few run
``python -m aerospike_wsgi_session`` as a subprocess, as a script would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore, cli
from aerospike_wsgi_session.cli import COMMANDS, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from aerospike_wsgi_session.store import SessionRecord
from aerospike_wsgi_session.testing import AerospikeServer, NamespaceConfig

Hosts = list[tuple[str, int]]


def hosts_text(hosts: Hosts) -> str:
    return ",".join(f"{host}:{port}" for host, port in hosts)


def dead_hosts() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def target(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> list[str]:
    """The options that point a command at the test's own set."""
    return [
        "--hosts",
        hosts_text(aerospike_hosts),
        "--namespace",
        aerospike_namespace,
        "--set",
        aerospike_set,
    ]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """``run(*argv)``: the exit code, stdout and stderr of one command."""

    def run_command(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run_command


def save_sessions(store: AerospikeStore, users: list[str | None]) -> None:
    """One stored session per entry of ``users`` (``None``: bound to no one)."""
    for number, user in enumerate(users):
        record = SessionRecord.new(created=1000.0)
        store.save(f"key-{number}", {"n": number}, record, ttl=0, user_id=user)


def test_help_names_every_command_and_the_exit_codes(run: Any) -> None:
    code, out, _ = run("--help")

    assert code == EXIT_OK
    for name, _, summary, _ in COMMANDS:
        assert f"{name}  " in out and summary in out
    assert "exit codes:" in out


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("check", "--no-ttl"),
        ("stats", "--json"),
        ("revoke", "--user"),
        ("purge", "--yes"),
    ],
)
def test_each_command_has_its_help(run: Any, command: str, option: str) -> None:
    code, out, _ = run(command, "--help")

    assert code == EXIT_OK
    assert out.startswith(f"usage: aerospike-wsgi-session {command}")
    assert option in out and "--hosts" in out and "exit codes:" in out


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["revoke"], id="revoke-without-user"),
        pytest.param(["stats", "--hosts", "a:port"], id="bad-hosts"),
        pytest.param(["check", "--set", "a:b"], id="bad-set"),
    ],
)
def test_usage_errors_exit_2(run: Any, argv: list[str]) -> None:
    code, out, err = run(*argv)

    assert code == EXIT_USAGE
    assert out == ""
    assert "error:" in err


def test_check_passes_on_the_test_cluster(run: Any, target: list[str]) -> None:
    code, out, err = run("check", *target, "--json")

    assert (code, err) == (EXIT_OK, "")
    found = json.loads(out)
    assert found["namespace"] == target[3]
    assert found["ttl_writes"] is True
    assert found["max_record_size"] >= 16 * 1024


def test_check_prints_one_line_per_finding(run: Any, target: list[str]) -> None:
    code, out, _ = run("check", *target, "--no-ttl")

    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert code == EXIT_OK
    assert lines["set"] == target[5]
    assert lines["ttl_writes"] == "False"


def test_check_of_a_missing_namespace_fails(run: Any, target: list[str]) -> None:
    target[3] = "no_such_namespace"

    code, out, err = run("check", *target)

    assert (code, out) == (EXIT_FAILED, "")
    assert "namespace 'no_such_namespace' does not exist" in err


def test_check_of_an_unreachable_cluster_fails(run: Any) -> None:
    code, _, err = run("check", "--hosts", dead_hosts())

    assert code == EXIT_FAILED
    assert "cannot reach Aerospike" in err


def test_check_reports_a_namespace_that_refuses_ttls(
    run: Any, aerospike_server: AerospikeServer
) -> None:
    no_expiry = NamespaceConfig("test", nsup_period=0)
    with AerospikeServer(namespaces=[no_expiry]) as server:
        hosts = ["--hosts", hosts_text(server.hosts)]
        refused = run("check", *hosts)
        without_ttl = run("check", *hosts, "--no-ttl")

    assert refused[0] == EXIT_FAILED
    assert "refuses records with a TTL" in refused[2]
    assert without_ttl[0] == EXIT_OK


def test_hosts_default_to_the_environment(
    run: Any,
    target: list[str],
    aerospike_hosts: Hosts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AEROSPIKE_HOSTS", hosts_text(aerospike_hosts))

    code, _, err = run("check", *target[2:])

    assert (code, err) == (EXIT_OK, "")


def test_stats_counts_the_records_of_the_set(
    run: Any, target: list[str], store: AerospikeStore
) -> None:
    save_sessions(store, [None, None, None])

    code, out, _ = run("stats", *target, "--json")

    figures = json.loads(out)
    assert code == EXIT_OK
    assert figures["records"] == 3
    assert figures["bytes"] > 0
    assert figures["nodes"] >= 1


def test_stats_of_an_empty_set(run: Any, target: list[str]) -> None:
    code, out, _ = run("stats", *target)

    assert code == EXIT_OK
    assert "records: 0" in out.splitlines()


def test_revoke_ends_the_sessions_of_one_user(
    run: Any, target: list[str], store: AerospikeStore
) -> None:
    save_sessions(store, ["ada", "ada", "bob"])

    code, out, _ = run("revoke", *target, "--user", "ada")

    assert code == EXIT_OK
    assert out == "revoked 2 sessions of user 'ada'\n"
    assert [store.load(f"key-{n}") is None for n in range(3)] == [True, True, False]


def test_purge_needs_a_confirmation(
    run: Any, target: list[str], store: AerospikeStore
) -> None:
    save_sessions(store, [None, None])

    refused = run("purge", *target)
    assert refused[0] == EXIT_USAGE
    assert "--yes" in refused[2]
    assert store.load("key-0") is not None

    code, out, _ = run("purge", *target, "--yes")
    assert code == EXIT_OK
    assert "purged" in out
    assert [store.load(f"key-{n}") for n in range(2)] == [None, None]


def run_module(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aerospike_wsgi_session", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_module_runs_as_a_script(target: list[str]) -> None:
    helped = run_module("--help")
    checked = run_module("check", *target)
    failed = run_module("check", "--hosts", dead_hosts())

    assert helped.returncode == EXIT_OK and "purge" in helped.stdout
    assert checked.returncode == EXIT_OK, checked.stderr
    assert "ttl_writes: True" in checked.stdout
    assert failed.returncode == EXIT_FAILED
    assert "cannot reach Aerospike" in failed.stderr


def test_the_console_script_runs_main() -> None:
    scripts = entry_points(group="console_scripts", name="aerospike-wsgi-session")

    assert [script.load() for script in scripts] == [main]


def test_the_login_comes_from_the_environment(
    run: Any, target: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEROSPIKE_USER", "operator")
    monkeypatch.setenv("AEROSPIKE_PASSWORD", "kept-off-the-command-line")

    store = cli._store(cli.build_parser().parse_args(["check", *target]))
    code, _, err = run("check", *target)

    assert (store._client_config["user"], code, err) == ("operator", EXIT_OK, "")
    assert store._client_config["password"] == "kept-off-the-command-line"
