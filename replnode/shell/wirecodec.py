"""Member-to-member messages on the wire: msgpack of the core's `to_wire` dicts.

Owns the request path names (`/_repl/<RequestType>`) and the one special case:
an oplog fetch reply carries its entries as the concatenated bytes the source's
oplog already holds, so entries are never encoded twice on the source.
Raises RemoteProtocolError on anything malformed.
"""

from __future__ import annotations

from typing import Any

from replnode import codec
from replnode.core import messages as m
from replnode.errors import RemoteProtocolError

REQUEST_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in m.RESPONSE_FOR}


def request_path(request: Any) -> str:
    return f"/_repl/{type(request).__name__}"


def encode(message: Any) -> bytes:
    if isinstance(message, m.FetchResponse) and message.raw:
        wire = m.to_wire(m.FetchResponse(message.ok, message.error, (), message.meta, b""))
        wire["raw"] = message.raw
        return codec.pack(wire)
    if isinstance(message, m.FetchResponse):
        wire = m.to_wire(message)
        wire["raw"] = b"".join(codec.pack(e) for e in message.entries)
        wire["entries"] = []
        return codec.pack(wire)
    return codec.pack(m.to_wire(message))


def decode_request(kind: str, data: bytes) -> Any:
    cls = REQUEST_TYPES.get(kind)
    if cls is None:
        raise RemoteProtocolError(f"unknown member request type {kind!r}")
    return m.from_wire(cls, codec.unpack(data))


def decode_response(request: Any, data: bytes) -> Any:
    cls = m.RESPONSE_FOR[type(request)]
    wire = codec.unpack(data)
    if cls is m.FetchResponse and isinstance(wire, dict):
        raw = wire.get("raw", b"")
        wire = {**wire, "raw": b"", "entries": codec.unpack_stream(raw) if raw else []}
    return m.from_wire(cls, wire)
