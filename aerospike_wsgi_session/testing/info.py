"""Info commands (message type 1): tending, truncation, indexes, statistics.

A request is one command per line; each answer line echoes the command text,
a TAB, then the value. Errors are values of the form ``ERROR:<code>:<text>``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

from .records import Index, Namespace
from .store import Store
from .wire import PARTICLE_BLOB, PARTICLE_INTEGER, PARTICLE_STRING

logger = logging.getLogger(__name__)

#: Every one of the 4096 partitions, owned by the single node.
ALL_PARTITIONS = base64.b64encode(b"\xff" * 512).decode()
FEATURES = (
    "pscans;pquery;peers;batch-any;query-show;replicas;truncate-namespace;"
    "cdt-map;cdt-list;float;blob-bits;geo;udf;sindex-exists;relaxed-sc"
)
UNKNOWN = "ERROR:4:unrecognized command"
_INDEX_TYPES = {
    "STRING": PARTICLE_STRING,
    "NUMERIC": PARTICLE_INTEGER,
    "INTEGER": PARTICLE_INTEGER,
    "BLOB": PARTICLE_BLOB,
    "GEO2DSPHERE": 23,
}
_COLLECTIONS = {"DEFAULT": 0, "LIST": 1, "MAPKEYS": 2, "MAPVALUES": 3}


class InfoResponder:
    """Answers info requests for one server.

    :param store: the server's data.
    :param build: the version string the server reports.
    :param node: the node name.
    :param cluster_name: the cluster name, or ``None`` when unset.
    :param port: the listening port (a callable, as it is known late).
    """

    def __init__(
        self,
        store: Store,
        build: str,
        node: str,
        cluster_name: str | None,
        port: Callable[[], int],
    ) -> None:
        self.store = store
        self.fixed = {
            "build": build,
            "node": node,
            "cluster-name": cluster_name or "null",
            "edition": "Aerospike Community Edition",
            "features": FEATURES,
            "partitions": "4096",
            "partition-generation": "1",
            "peers-generation": "1",
            "rebalance-generation": "1",
        }
        self.port = port

    def answer(self, body: bytes) -> bytes:
        """Return the response body for an info request body.

        :param body: newline-separated commands.
        """
        commands = body.decode("utf-8", "replace").split("\n")
        lines = [f"{cmd}\t{self.value(cmd)}\n" for cmd in commands if cmd]
        return "".join(lines).encode()

    def value(self, command: str) -> str:
        """Return the value answering one info command.

        :param command: the full command text, parameters included.
        """
        name, _, params = command.partition(":")
        if name in self.fixed:
            return self.fixed[name]
        head, _, rest = name.partition("/")
        handler = self._handlers().get(head)
        if handler is None:
            return UNKNOWN
        argument = rest if rest else params
        try:
            return handler(argument)
        except (KeyError, ValueError) as err:
            logger.debug("info command %r refused: %s", name, err)
            return f"ERROR:4:bad parameters: {err}"

    def _handlers(self) -> dict[str, Callable[[str], str]]:
        return {
            "namespaces": lambda _: ";".join(self._names()),
            "replicas": lambda _: self._replicas(),
            "peers-clear-std": lambda _: f"1,{self.port()},[]",
            "peers-clear-alt": lambda _: f"1,{self.port()},[]",
            "peers-tls-std": lambda _: "1,,[]",
            "peers-tls-alt": lambda _: "1,,[]",
            "service-clear-std": lambda _: f"127.0.0.1:{self.port()}",
            "service-clear-alt": lambda _: f"127.0.0.1:{self.port()}",
            "user-agent-set": lambda _: "ok",
            "truncate": self._truncate,
            "truncate-namespace": self._truncate,
            "sindex-create": self._sindex_create,
            "sindex-delete": self._sindex_delete,
            "sindex-stat": self._sindex_stat,
            "sindex": self._sindex_stat_path,
            "sindex-list": self._sindex_list,
            "sets": self._sets,
            "namespace": self._namespace,
            "statistics": self._statistics,
        }

    def _names(self) -> list[str]:
        return [name.decode() for name in self.store.namespaces]

    def _replicas(self) -> str:
        return ";".join(f"{name}:0,1,{ALL_PARTITIONS}" for name in self._names())

    def _namespace_of(self, params: dict[str, str]) -> Namespace:
        name = params.get("namespace") or params.get("ns") or ""
        namespace = self.store.namespaces.get(name.encode())
        if namespace is None:
            raise KeyError(f"namespace {name!r} not found")
        return namespace

    def _truncate(self, raw: str) -> str:
        params = parse_params(raw)
        namespace = self._namespace_of(params)
        set_name = params["set"].encode() if params.get("set") else None
        before = int(params["lut"]) if params.get("lut") else self.store.now_ns()
        with self.store.lock:
            count = namespace.truncate(set_name, before)
        logger.debug("truncate of %s removed %d records", raw, count)
        return "ok"

    def _sindex_create(self, raw: str) -> str:
        params = parse_params(raw)
        namespace = self._namespace_of(params)
        if "indexdata" in params:
            params["bin"], _, params["type"] = params["indexdata"].partition(",")
        if "context" in params or "exp" in params:
            return "FAIL:4:index on a context or expression is not supported"
        index = Index(
            params["indexname"],
            params["set"].encode() if params.get("set") else None,
            params["bin"].encode(),
            _INDEX_TYPES[params["type"].upper()],
            _COLLECTIONS[params.get("indextype", "DEFAULT").upper()],
        )
        return self._add_index(namespace, index)

    def _add_index(self, namespace: Namespace, index: Index) -> str:
        with self.store.lock:
            if index.name in namespace.indexes:
                return "FAIL:200:Index with the same name already exists"
            same = [i for i in namespace.indexes.values() if i[1:] == index[1:]]
            if same:
                return "FAIL:200:Index with the same definition already exists"
            namespace.indexes[index.name] = index
        return "ok"

    def _sindex_delete(self, raw: str) -> str:
        params = parse_params(raw)
        namespace = self._namespace_of(params)
        with self.store.lock:
            if namespace.indexes.pop(params["indexname"], None) is None:
                return "FAIL:201:Index does not exist"
        return "ok"

    def _sindex_stat(self, raw: str) -> str:
        params = parse_params(raw)
        return self._index_stats(self._namespace_of(params), params["indexname"])

    def _sindex_stat_path(self, raw: str) -> str:
        ns_name, _, index_name = raw.partition("/")
        return self._index_stats(self._namespace_of({"ns": ns_name}), index_name)

    def _index_stats(self, namespace: Namespace, name: str) -> str:
        if name not in namespace.indexes:
            return "FAIL:201:Index does not exist"
        return "keys=0;entries=0;memory_used=0;load_pct=100;stat_gc_recs=0"

    def _sindex_list(self, raw: str) -> str:
        rows = []
        for ns_name, namespace in self.store.namespaces.items():
            for index in list(namespace.indexes.values()):
                rows.append(_index_row(ns_name.decode(), index))
        return "".join(rows)

    def _sets(self, raw: str) -> str:
        ns_name, _, set_name = raw.partition("/")
        if set_name:
            namespace = self._namespace_of({"ns": ns_name})
            return self._set_stats(namespace, set_name.encode(), ":")
        rows = []
        for name, namespace in self.store.namespaces.items():
            for seen in sorted(namespace.set_names):
                stats = self._set_stats(namespace, seen, ":")
                rows.append(f"ns={name.decode()}:set={seen.decode()}:{stats};")
        return "".join(rows)

    def _set_stats(self, namespace: Namespace, set_name: bytes, sep: str) -> str:
        if set_name not in namespace.set_names:
            return ""
        objects, size = self._usage(namespace, set_name)
        indexes = sum(i.set_name == set_name for i in namespace.indexes.values())
        stats: dict[str, object] = {"objects": objects, "tombstones": 0}
        stats["data_used_bytes"] = size
        stats |= {"truncate_lut": 0, "sindexes": indexes}
        stats |= {"index_populating": "false", "truncating": "false"}
        return sep.join(f"{key}={value}" for key, value in stats.items())

    def _usage(self, namespace: Namespace, set_name: bytes | None) -> tuple[int, int]:
        now = self.store.now()
        with self.store.lock:
            sizes = [r.size() for r in namespace.scan(set_name, now)]
        return len(sizes), sum(sizes)

    def _namespace(self, raw: str) -> str:
        namespace = self._namespace_of({"ns": raw})
        config = namespace.config
        objects, size = self._usage(namespace, None)
        stats: dict[str, object] = {"ns_cluster_size": 1, "objects": objects}
        stats["tombstones"] = 0
        stats |= {"data_used_bytes": size, "replication-factor": 1}
        stats |= {"default-ttl": config.default_ttl}
        stats |= {"max-record-size": config.max_record_size}
        stats |= {"nsup-period": config.nsup_period}
        stats |= {"allow-ttl-without-nsup": str(config.allow_ttl_without_nsup).lower()}
        return ";".join(f"{key}={value}" for key, value in stats.items())

    def _statistics(self, raw: str) -> str:
        objects = sum(
            self._usage(namespace, None)[0]
            for namespace in self.store.namespaces.values()
        )
        stats: dict[str, object] = {"cluster_size": 1, "objects": objects}
        stats["cluster_integrity"] = "true"
        stats |= {"cluster_clock_skew_ms": 0, "sindex_gc_garbage_found": 0}
        return ";".join(f"{key}={value}" for key, value in stats.items())


def parse_params(raw: str) -> dict[str, str]:
    """Split ``key=value;key=value`` info parameters into a dict.

    :param raw: the text after the command name and colon.
    """
    pairs = (item.partition("=") for item in raw.split(";") if item)
    return {key.strip(): value.strip() for key, _, value in pairs}


def _index_row(ns_name: str, index: Index) -> str:
    types = {v: k for k, v in _INDEX_TYPES.items() if k != "NUMERIC"}
    collections = {v: k for k, v in _COLLECTIONS.items()}
    set_name = index.set_name.decode() if index.set_name else "NULL"
    return (
        f"ns={ns_name}:indexname={index.name}:set={set_name}:"
        f"bin={index.bin.decode()}:type={types[index.ptype].lower()}:"
        f"indextype={collections[index.collection].lower()}:state=RW;"
    )
