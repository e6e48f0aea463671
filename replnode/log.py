"""Logger names per layer and the two line formats (MongoDB-style JSON, or text).

Owns: the logger names (`replnode.core`, `replnode.shell`, `replnode.peers`,
`replnode.access`, `replnode.storage`), the JSON line format of MongoDB 4.4+
(`t`, `s`, `c`, `id`, `ctx`, `msg`, `attr`), and handler setup for the daemon.
Core modules get loggers; only the shell adds timestamps (here).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import zlib
from typing import Any

CORE = "replnode.core"
SHELL = "replnode.shell"
PEERS = "replnode.peers"
ACCESS = "replnode.access"
STORAGE = "replnode.storage"

_SEVERITY = {logging.DEBUG: "D1", logging.INFO: "I", logging.WARNING: "W",
             logging.ERROR: "E", logging.CRITICAL: "F"}


def component_for(record: logging.LogRecord) -> str:
    """MongoDB's log component for a record: REPL, ELECTION, INITSYNC, ROLLBACK, ..."""
    explicit = getattr(record, "component", None)
    if explicit:
        return str(explicit)
    name = record.name
    text = record.getMessage()
    if name.startswith(CORE) or name.startswith("replnode.sim"):
        lowered = text.lower()
        if any(word in lowered for word in ("election", "vote", "takeover", "stepped_down",
                                             "step down", "step-up", "handoff")):
            return "ELECTION"
        if "initial sync" in lowered:
            return "INITSYNC"
        if "rollback" in lowered:
            return "ROLLBACK"
        return "REPL"
    if name.startswith(PEERS):
        return "NETWORK"
    if name.startswith(ACCESS):
        return "COMMAND"
    if name.startswith(STORAGE):
        return "STORAGE"
    return "CONTROL"


def _message_id(record: logging.LogRecord) -> int:
    """A stable id per message template, like MongoDB's numeric log ids."""
    template = record.msg if isinstance(record.msg, str) else str(record.msg)
    return zlib.crc32(template.encode()) % 10_000_000


def _attrs(record: logging.LogRecord) -> dict[str, Any]:
    attr = getattr(record, "attr", None)
    out: dict[str, Any] = dict(attr) if isinstance(attr, dict) else {}
    message = record.getMessage()
    # Core messages use "key=value" pairs; lift them into attr so they are queryable.
    for token in message.split():
        key, sep, value = token.partition("=")
        if sep and key.isidentifier() and key not in out:
            out[key] = value
    if record.exc_info:
        out["exception"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line, MongoDB 4.4+ style."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        line = {
            "t": {"$date": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
            "s": _SEVERITY.get(record.levelno, "I"),
            "c": component_for(record),
            "id": _message_id(record),
            "ctx": record.threadName if record.threadName != "MainThread" else "main",
            "msg": record.getMessage(),
            "attr": _attrs(record),
        }
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Readable lines: time, severity, component, message."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        text = (f"{ts.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} "
                f"{_SEVERITY.get(record.levelno, 'I'):<2} {component_for(record):<9} "
                f"{record.getMessage()}")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(*, logpath: str | None, fmt: str, verbosity: int) -> None:
    """Route every replnode logger to stderr or a file, in the chosen format."""
    handler: logging.Handler
    if logpath:
        handler = logging.FileHandler(logpath, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("replnode")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    root.propagate = False
    aio = logging.getLogger("aiohttp")
    aio.handlers[:] = [handler]
    aio.setLevel(logging.WARNING)
    aio.propagate = False
