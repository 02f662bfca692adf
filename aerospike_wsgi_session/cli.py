"""The operator's command line: ``python -m aerospike_wsgi_session``.

Installed as the ``aerospike-wsgi-session`` console script too. Every
command works on one namespace and set of one cluster, and goes through the
store's own operations:

- ``check``: the store's self-check (:meth:`AerospikeStore.check`).
- ``stats``: how many session records the set holds, and their bytes.
- ``revoke --user ID``: end every session of one user
  (:meth:`AerospikeStore.destroy_user`).
- ``purge --yes``: delete every session of the set (:meth:`AerospikeStore.clear`).

On a cluster with security enabled, ``AEROSPIKE_USER`` and
``AEROSPIKE_PASSWORD`` give the login, kept off the command line.

Exit codes, for scripts: :data:`EXIT_OK` (0) when the command did its job,
:data:`EXIT_FAILED` (1) when the check failed or Aerospike failed or could
not be reached, :data:`EXIT_USAGE` (2) for bad arguments, bad options, or a
purge without ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .exc import StoreError
from .selfcheck import PROBE_TTL
from .store import AerospikeStore

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

HOSTS_VARIABLE = "AEROSPIKE_HOSTS"
USER_VARIABLE = "AEROSPIKE_USER"
PASSWORD_VARIABLE = "AEROSPIKE_PASSWORD"
DEFAULT_HOSTS = "127.0.0.1:3000"
PROG = "aerospike-wsgi-session"
#: What servers before Aerospike 7 report instead of ``data_used_bytes``.
_OLD_SIZE_FIELDS = ("memory_data_bytes", "device_data_bytes")

EPILOG = """\
environment:
  AEROSPIKE_HOSTS     the default of --hosts
  AEROSPIKE_USER      log in as this user (a cluster with security enabled)
  AEROSPIKE_PASSWORD  that user's password

exit codes:
  0  done; for check, the cluster can keep sessions
  1  the check failed, or Aerospike failed or could not be reached
  2  usage error: bad arguments or options, or purge without --yes
"""

Command = Callable[[AerospikeStore, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code.

    :param argv: the arguments, without the program name; ``sys.argv[1:]``
        when ``None``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        store = _store(args)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except ValueError as err:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: error: {err}\n")
        return EXIT_USAGE

    try:
        command: Command = args.command
        return command(store, args)
    except StoreError as err:
        sys.stderr.write(f"{PROG} {args.command_name}: {err}\n")
        return EXIT_FAILED
    finally:
        store.close()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command, with ``--help`` for each."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check and look after the session store in Aerospike.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True
    common = _common_options()
    for name, command, summary, add_arguments in COMMANDS:
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary.capitalize()}.",
            epilog=EPILOG,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(command=command, command_name=name)
        add_arguments(sub)
    return parser


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--hosts",
        default=os.environ.get(HOSTS_VARIABLE) or DEFAULT_HOSTS,
        help=f"seed hosts, 'h1:3000,h2:3000' (default: ${HOSTS_VARIABLE}, "
        f"else {DEFAULT_HOSTS})",
    )
    common.add_argument(
        "--namespace", default="test", help="the namespace (default: test)"
    )
    common.add_argument(
        "--set", default="session", help="the sessions' set (default: session)"
    )
    return common


def _store(args: argparse.Namespace) -> AerospikeStore:
    # One attempt per call: an operator wants the error, not a fast failure.
    return AerospikeStore(
        namespace=args.namespace,
        set=args.set,
        hosts=args.hosts,
        breaker_threshold=0,
        **_login(),
    )


def _login() -> dict[str, Any]:
    # From the environment, so that no password shows in a process list.
    user = os.environ.get(USER_VARIABLE)
    if not user:
        return {}
    return {"user": user, "password": os.environ.get(PASSWORD_VARIABLE, "")}


def check(store: AerospikeStore, args: argparse.Namespace) -> int:
    """Run the self-check and print what it found."""
    found = store.check(0 if args.no_ttl else PROBE_TTL)
    _report(found, args.json)
    return EXIT_OK


def stats(store: AerospikeStore, args: argparse.Namespace) -> int:
    """Print the number of session records and their bytes."""
    _report(set_stats(store), args.json)
    return EXIT_OK


def revoke(store: AerospikeStore, args: argparse.Namespace) -> int:
    """End every session bound to a user."""
    count = store.destroy_user(args.user)
    _say(f"revoked {count} session{'s' * (count != 1)} of user {args.user!r}")
    return EXIT_OK


def purge(store: AerospikeStore, args: argparse.Namespace) -> int:
    """Truncate the set, once confirmed with ``--yes``."""
    where = f"{store.namespace}/{store.set}"
    if not args.yes:
        sys.stderr.write(
            f"{PROG} purge: this deletes every session in {where}; "
            "run it again with --yes to confirm\n"
        )
        return EXIT_USAGE
    store.clear()
    _say(f"purged every session in {where}")
    return EXIT_OK


def set_stats(store: AerospikeStore) -> dict[str, Any]:
    """Count the records and data bytes of the store's set, over the cluster.

    Nodes count replica copies too, so the sums are divided by the number
    of copies (the replication factor, at most the number of nodes).

    :raises StoreError: Aerospike could not be asked, or refused.
    """
    command = f"sets/{store.namespace}/{store.set}"
    answers = _info_all(store, command)
    totals = [_set_usage(_fields(text, ":")) for text in answers]
    copies = min(_replication_factor(store), len(answers)) or 1
    return {
        "namespace": store.namespace,
        "set": store.set,
        "records": sum(objects for objects, _ in totals) // copies,
        "bytes": sum(size for _, size in totals) // copies,
        "nodes": len(answers),
    }


def _set_usage(fields: Mapping[str, str]) -> tuple[int, int]:
    # Aerospike 7 and later report data_used_bytes; older servers split
    # the figure by storage.
    if "data_used_bytes" in fields:
        size = int(fields["data_used_bytes"])
    else:
        size = sum(int(fields.get(name, 0)) for name in _OLD_SIZE_FIELDS)
    return int(fields.get("objects", 0)), size


def _replication_factor(store: AerospikeStore) -> int:
    [text, *_] = _info_all(store, f"namespace/{store.namespace}")
    fields = _fields(text, ";")
    factor = fields.get("effective_replication_factor")
    return int(factor or fields.get("replication-factor") or 1)


def _info_all(store: AerospikeStore, command: str) -> list[str]:
    answers = store._call("stats", lambda: store.client.info_all(command))
    texts = []
    for node, (error, text) in answers.items():
        if error is not None:
            raise StoreError(f"node {node} refused {command!r}: {error}")
        texts.append(str(text).strip())
    return texts


def _fields(text: str, separator: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in text.split(separator) if "=" in item)
    return {name: value for name, _, value in pairs}


def _report(found: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        _say(json.dumps(dict(found), sort_keys=True))
        return
    for name, value in found.items():
        _say(f"{name}: {value}")


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-ttl",
        action="store_true",
        help="sessions are written without a TTL: skip the TTL write test",
    )
    _json_argument(parser)


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _revoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id to log out")


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes", action="store_true", help="confirm: delete every session"
    )


Arguments = Callable[[argparse.ArgumentParser], None]
COMMANDS: list[tuple[str, Command, str, Arguments]] = [
    ("check", check, "check that the cluster can keep sessions", _check_arguments),
    ("stats", stats, "count the session records and their bytes", _json_argument),
    ("revoke", revoke, "end every session of one user", _revoke_arguments),
    ("purge", purge, "delete every session of the set", _purge_arguments),
]
