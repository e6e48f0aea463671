"""Encoding of documents and messages: msgpack for members and msgpack clients,
relaxed Extended JSON for everyone else.

Owns the mapping of BSON types (ObjectId, dates, Timestamp, Regex, Int64,
Decimal128, Binary, MinKey, MaxKey) onto msgpack extension types, so documents
keep their types across the wire, in the journal and in oplog size accounting.
Raises `RemoteProtocolError` for bytes that do not decode.
"""

from __future__ import annotations

import datetime
import json
import struct
from typing import Any

import msgpack
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson import json_util

from replnode.errors import RemoteProtocolError
from replnode.storage.values import datetime_to_ms, ms_to_datetime

EXT_OBJECTID = 1
EXT_DATETIME = 2
EXT_TIMESTAMP = 3
EXT_REGEX = 4
EXT_INT64 = 5
EXT_DECIMAL128 = 6
EXT_BINARY = 7
EXT_MINKEY = 8
EXT_MAXKEY = 9

_I64 = struct.Struct(">q")
_TS = struct.Struct(">II")


def _default(obj: Any) -> Any:
    if isinstance(obj, ObjectId):
        return msgpack.ExtType(EXT_OBJECTID, obj.binary)
    if isinstance(obj, datetime.datetime):
        return msgpack.ExtType(EXT_DATETIME, _I64.pack(datetime_to_ms(obj)))
    if isinstance(obj, Timestamp):
        return msgpack.ExtType(EXT_TIMESTAMP, _TS.pack(obj.time, obj.inc))
    if isinstance(obj, Int64):
        return msgpack.ExtType(EXT_INT64, _I64.pack(int(obj)))
    if isinstance(obj, Regex):
        return msgpack.ExtType(EXT_REGEX, msgpack.packb([obj.pattern, obj.flags]))
    if isinstance(obj, Decimal128):
        return msgpack.ExtType(EXT_DECIMAL128, obj.bid)
    if isinstance(obj, Binary):
        return msgpack.ExtType(EXT_BINARY, bytes([obj.subtype]) + bytes(obj))
    if isinstance(obj, MinKey):
        return msgpack.ExtType(EXT_MINKEY, b"")
    if isinstance(obj, MaxKey):
        return msgpack.ExtType(EXT_MAXKEY, b"")
    # strict_types sends subclasses here: SON/OrderedDict, tuples, str/int subclasses.
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, (tuple, list)):
        return list(obj)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_OBJECTID:
        return ObjectId(data)
    if code == EXT_DATETIME:
        return ms_to_datetime(_I64.unpack(data)[0])
    if code == EXT_TIMESTAMP:
        secs, inc = _TS.unpack(data)
        return Timestamp(secs, inc)
    if code == EXT_REGEX:
        pattern, flags = msgpack.unpackb(data)
        return Regex(pattern, flags)
    if code == EXT_INT64:
        return Int64(_I64.unpack(data)[0])
    if code == EXT_DECIMAL128:
        return Decimal128.from_bid(data)
    if code == EXT_BINARY:
        subtype = data[0]
        return bytes(data[1:]) if subtype == 0 else Binary(bytes(data[1:]), subtype)
    if code == EXT_MINKEY:
        return MinKey()
    if code == EXT_MAXKEY:
        return MaxKey()
    return msgpack.ExtType(code, data)


def pack(obj: Any) -> bytes:
    """Encode a message or document to msgpack, keeping BSON types."""
    try:
        packed: bytes = msgpack.packb(obj, default=_default, use_bin_type=True,
                                      strict_types=True)
        return packed
    except (TypeError, ValueError, OverflowError) as exc:
        raise RemoteProtocolError(f"cannot encode value: {exc}") from exc


def unpack(data: bytes) -> Any:
    """Decode one msgpack value; malformed input raises RemoteProtocolError."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise RemoteProtocolError(f"malformed msgpack body: {exc}") from exc


def unpack_stream(data: bytes) -> list[Any]:
    """Decode a concatenation of msgpack values (pre-encoded oplog entries)."""
    unpacker = msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False,
                                max_buffer_size=max(len(data), 1024))
    unpacker.feed(data)
    try:
        return list(unpacker)
    except Exception as exc:
        raise RemoteProtocolError(f"malformed msgpack stream: {exc}") from exc


JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, tz_aware=False, uuid_representation=4
)


def to_json(obj: Any) -> str:
    """Relaxed Extended JSON text, as mongosh prints and MongoDB tools read it."""
    return json_util.dumps(obj, json_options=JSON_OPTIONS)


def from_json(text: str | bytes) -> Any:
    """Parse (relaxed or canonical) Extended JSON; malformed input raises RemoteProtocolError."""
    try:
        return json_util.loads(text, json_options=JSON_OPTIONS)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise RemoteProtocolError(f"malformed JSON body: {exc}") from exc
    except Exception as exc:  # bson raises its own errors for bad $-types
        raise RemoteProtocolError(f"malformed Extended JSON body: {exc}") from exc
