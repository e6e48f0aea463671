"""Readers turning recorded histories into `Operation` lists for the linearizability checker.

Owns two formats: Jepsen register logs (`INFO jepsen.util - P :invoke :cas [1 2]` lines) and EDN
key-value histories (one `{:process P, :type :invoke, :f :get, :key "k", :value v}` map a line),
plus a minimal EDN reader and the known-verdict vector directory layout (`expected.tsv`).

Invocations are paired with their completion per process; the line number is the timestamp.
`:ok` completes an operation, `:fail` means it certainly did not happen (it is dropped), `:info`
and invocations still open at the end of the history have an unknown outcome.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from replnode.testing.linearizability import (
    KvInput,
    Model,
    Operation,
    kv_model,
    register_cas,
    register_model,
    register_read,
    register_write,
)

VECTORS_ENV: Final = "REPLNODE_LIN_VECTORS"
DEFAULT_VECTORS_DIR: Final = "/work/shared/linearizability-vectors"


@dataclass(frozen=True, slots=True)
class Keyword:
    """An EDN keyword such as `:ok`, kept distinct from strings."""

    name: str


# --------------------------------------------------------------------------------------------
# Minimal EDN reader: maps, vectors, lists, strings, keywords, integers, floats, nil, booleans.

_TOKEN: Final = re.compile(
    r"""[\s,]*(?:
        (?P<open>[{\[(])
      | (?P<close>[}\])])
      | "(?P<str>(?:[^"\\]|\\.)*)"
      | (?P<atom>[^\s,{}\[\]()"]+)
    )""",
    re.DOTALL | re.VERBOSE,
)
_ESCAPES: Final = MappingProxyType(
    {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
)
_CLOSERS: Final = MappingProxyType({"{": "}", "[": "]", "(": ")"})


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Split EDN text into (kind, text) tokens, rejecting anything unreadable."""
    pos, end = 0, len(text.rstrip(" \t\r\n,"))
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"unreadable EDN at offset {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        yield kind, match.group(kind)
        pos = match.end()


def _unescape(body: str) -> str:
    """Decode the escapes of an EDN string body."""
    if "\\" not in body:
        return body

    def one(match: re.Match[str]) -> str:
        """Decode one escape sequence."""
        code = match.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        if code not in _ESCAPES:
            raise ValueError(f"unknown EDN escape \\{code}")
        return _ESCAPES[code]

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, body)


def _atom(text: str) -> Any:
    """Read a scalar: nil, booleans, keywords, integers, floats, or a bare symbol as a str."""
    if text == "nil":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text.startswith(":"):
        return Keyword(text[1:])
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _read(tokens: Iterator[tuple[str, str]], first: tuple[str, str]) -> Any:
    """Read one EDN value starting at `first`; collections become dicts and tuples."""
    kind, text = first
    if kind == "str":
        return _unescape(text)
    if kind == "atom":
        return _atom(text)
    if kind == "close":
        raise ValueError(f"unexpected {text!r}")
    items: list[Any] = []
    for token in tokens:
        if token[0] == "close":
            if token[1] != _CLOSERS[text]:
                raise ValueError(f"{text!r} closed by {token[1]!r}")
            if text != "{":
                return tuple(items)
            if len(items) % 2:
                raise ValueError("map with an odd number of forms")
            return dict(zip(items[::2], items[1::2], strict=True))
        items.append(_read(tokens, token))
    raise ValueError(f"unterminated {text!r}")


def read_edn(text: str) -> Any:
    """Read exactly one EDN value from `text`."""
    tokens = _tokens(text)
    first = next(tokens, None)
    if first is None:
        raise ValueError("empty EDN text")
    value = _read(tokens, first)
    if next(tokens, None) is not None:
        raise ValueError("trailing forms after the EDN value")
    return value


# --------------------------------------------------------------------------------------------
# Pairing invocations with completions.


class _Pairing:
    """Match each process's invocation with its completion into operations."""

    def __init__(self) -> None:
        self.pending: dict[Hashable, tuple[float, Any]] = {}
        self.ops: list[Operation] = []

    def invoke(self, process: Hashable, at: float, input: Any) -> None:
        """Open an operation; a process runs one operation at a time."""
        if process in self.pending:
            raise ValueError(f"process {process!r} invokes at {at} with an operation open")
        self.pending[process] = (at, input)

    def complete(self, process: Hashable, at: float, kind: str, output: Any = None) -> None:
        """Close an operation as ok, fail or info (a failed one certainly did not happen)."""
        if process not in self.pending:
            raise ValueError(f"process {process!r} completes at {at} with nothing open")
        call_time, input = self.pending.pop(process)
        if kind == "ok":
            self.ops.append(Operation(process, input, output, call_time, at))
        elif kind == "info":
            self.ops.append(Operation(process, input, None, call_time))
        elif kind != "fail":
            raise ValueError(f"unknown completion type {kind!r} at {at}")

    def finish(self) -> list[Operation]:
        """Close still-open operations as unknown and return all in call order."""
        for process, (call_time, input) in self.pending.items():
            self.ops.append(Operation(process, input, None, call_time))
        self.pending.clear()
        return sorted(self.ops, key=lambda op: op.call_time)


# --------------------------------------------------------------------------------------------
# Jepsen register logs.

_JEPSEN_LINE: Final = re.compile(
    r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:([\w-]+)\s+(.*?)\s*$"
)


def _register_input(f: str, value: Any, at: int) -> Any:
    """Build the register input of a Jepsen invocation."""
    if f == "read":
        return register_read()
    if f == "write":
        return register_write(value)
    if f == "cas" and isinstance(value, tuple) and len(value) == 2:
        return register_cas(value[0], value[1])
    raise ValueError(f"line {at}: unsupported register operation {f} {value!r}")


def parse_jepsen_register_log(text: str) -> list[Operation]:
    """Read a Jepsen register log (read / write / cas); other log lines are ignored."""
    pairing = _Pairing()
    for at, line in enumerate(text.splitlines()):
        match = _JEPSEN_LINE.match(line)
        if match is None:
            continue
        process, kind, f, raw = int(match[1]), match[2], match[3], match[4]
        value = read_edn(raw) if raw else None
        if kind == "invoke":
            pairing.invoke(process, at, _register_input(f, value, at))
            continue
        output: Any = None
        if kind == "ok" and f == "read":
            output = value
        elif kind == "ok" and f == "cas":
            output = True
        pairing.complete(process, at, kind, output)
    return pairing.finish()


# --------------------------------------------------------------------------------------------
# EDN key-value histories.

_PROCESS, _TYPE, _F, _KEY, _VALUE = (Keyword(k) for k in ("process", "type", "f", "key", "value"))


def _kv_event(event: dict[Any, Any], at: int) -> tuple[Hashable, str, str, Any, Any]:
    """Pull (process, type, f, key, value) out of one EDN event map."""
    try:
        kind, f = event[_TYPE], event[_F]
        if not isinstance(kind, Keyword) or not isinstance(f, Keyword):
            raise ValueError("type and f must be keywords")
        return event[_PROCESS], kind.name, f.name, event[_KEY], event.get(_VALUE)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"line {at}: malformed key-value event {event!r}: {exc}") from exc


def parse_edn_kv_history(text: str) -> list[Operation]:
    """Read a key-value history of get / put / append events, one EDN map per line."""
    pairing = _Pairing()
    for at, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        event = read_edn(line)
        if not isinstance(event, dict):
            raise ValueError(f"line {at}: expected an EDN map, got {event!r}")
        process, kind, f, key, value = _kv_event(event, at)
        if f not in ("get", "put", "append"):
            raise ValueError(f"line {at}: unsupported key-value operation {f!r}")
        if kind == "invoke":
            pairing.invoke(process, at, KvInput(f, key, "" if f == "get" else str(value)))
        elif kind == "ok" and f == "get":
            pairing.complete(process, at, kind, "" if value is None else value)
        else:
            pairing.complete(process, at, kind)
    return pairing.finish()


# --------------------------------------------------------------------------------------------
# Files and the vector directory.


def load_history(path: Path) -> tuple[Model, list[Operation]]:
    """Read a history file, picking the format (and so the model) from its first event."""
    text = path.read_text(encoding="utf-8")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return kv_model(), parse_edn_kv_history(text)
    return register_model(), parse_jepsen_register_log(text)


def vectors_dir() -> Path:
    """Where the known-verdict vectors live: $REPLNODE_LIN_VECTORS or the shared default."""
    return Path(os.environ.get(VECTORS_ENV) or DEFAULT_VECTORS_DIR)


def read_expected(directory: Path) -> list[tuple[str, bool]]:
    """Read `expected.tsv`: (relative file, linearizable) rows, header skipped."""
    rows: list[tuple[str, bool]] = []
    for line in _data_lines((directory / "expected.tsv").read_text(encoding="utf-8")):
        name, verdict = line.split("\t")[:2]
        if verdict.strip() not in ("true", "false"):
            raise ValueError(f"expected.tsv: bad verdict {verdict!r} for {name}")
        rows.append((name.strip(), verdict.strip() == "true"))
    return rows


def _data_lines(text: str) -> Iterable[str]:
    """Non-blank lines after the header row."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[1:]
