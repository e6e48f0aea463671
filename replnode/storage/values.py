"""MongoDB's cross-type value order, as sortable Python keys.

Owns the one total order every other storage module uses (matching, sorting,
index keys): MinKey < null < numbers < strings < objects < arrays < binData <
ObjectId < booleans < dates < timestamps < regexes < MaxKey. `sort_key(v)`
returns a tuple that Python orders exactly as MongoDB orders BSON values, and two
values are equal for `$eq` purposes exactly when their keys are equal (so 1 == 1.0).
Pure: no I/O.
"""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal
from typing import Any

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

# Canonical type ranks (bsontypes.h canonicalizeBSONType), spaced as in MongoDB.
RANK_MINKEY = -1
RANK_MISSING = 0  # only used for "field absent" in sort; equals null in comparisons
RANK_NULL = 5
RANK_NUMBER = 10
RANK_STRING = 15
RANK_OBJECT = 20
RANK_ARRAY = 25
RANK_BINDATA = 30
RANK_OBJECTID = 35
RANK_BOOL = 40
RANK_DATE = 45
RANK_TIMESTAMP = 47
RANK_REGEX = 50
RANK_CODE = 60
RANK_MAXKEY = 127

_EPOCH = datetime.datetime(1970, 1, 1)
_EPOCH_AWARE = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def datetime_to_ms(value: datetime.datetime) -> int:
    """Milliseconds since the epoch, as BSON dates store them (UTC, naive or aware)."""
    base = _EPOCH_AWARE if value.tzinfo is not None else _EPOCH
    delta = value - base
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def ms_to_datetime(ms: int) -> datetime.datetime:
    """A naive UTC datetime with millisecond precision (pymongo's default decoding)."""
    return _EPOCH + datetime.timedelta(milliseconds=ms)


def canonical_rank(value: Any) -> int:
    """The canonical BSON type rank of a Python value stored in a document."""
    if value is None:
        return RANK_NULL
    if isinstance(value, bool):
        return RANK_BOOL
    if isinstance(value, (int, float, Decimal128)):
        return RANK_NUMBER
    if isinstance(value, str):
        return RANK_STRING
    if isinstance(value, dict):
        return RANK_OBJECT
    if isinstance(value, (list, tuple)):
        return RANK_ARRAY
    if isinstance(value, (bytes, Binary)):
        return RANK_BINDATA
    if isinstance(value, ObjectId):
        return RANK_OBJECTID
    if isinstance(value, datetime.datetime):
        return RANK_DATE
    if isinstance(value, Timestamp):
        return RANK_TIMESTAMP
    if isinstance(value, (Regex, re.Pattern)):
        return RANK_REGEX
    if isinstance(value, MinKey):
        return RANK_MINKEY
    if isinstance(value, MaxKey):
        return RANK_MAXKEY
    if isinstance(value, Code):
        return RANK_CODE
    raise TypeError(f"unsupported value type {type(value).__name__}")


def _number_key(value: int | float | Decimal128) -> tuple[Any, ...]:
    # NaN sorts below every other number; Python cannot order NaN, hence the flag.
    if isinstance(value, Decimal128):
        dec = value.to_decimal()
        if dec.is_nan():
            return (RANK_NUMBER, 0, 0)
        if dec.is_infinite():
            return (RANK_NUMBER, 1, -math.inf if dec < 0 else math.inf)
        return (RANK_NUMBER, 1, dec)
    if isinstance(value, float) and math.isnan(value):
        return (RANK_NUMBER, 0, 0)
    return (RANK_NUMBER, 1, value)


def sort_key(value: Any) -> tuple[Any, ...]:
    """A tuple key that orders values as MongoDB compares them (equal keys == equal values)."""
    if value is None:
        return (RANK_NULL,)
    if isinstance(value, bool):
        return (RANK_BOOL, value)
    if isinstance(value, (int, float, Decimal128)):
        return _number_key(value)
    if isinstance(value, str):
        return (RANK_STRING, value)
    if isinstance(value, dict):
        return (RANK_OBJECT, tuple((sort_key(v)[0], k, sort_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (RANK_ARRAY, tuple(sort_key(v) for v in value))
    if isinstance(value, Binary):
        return (RANK_BINDATA, len(value), value.subtype, bytes(value))
    if isinstance(value, bytes):
        return (RANK_BINDATA, len(value), 0, value)
    if isinstance(value, ObjectId):
        return (RANK_OBJECTID, value.binary)
    if isinstance(value, datetime.datetime):
        return (RANK_DATE, datetime_to_ms(value))
    if isinstance(value, Timestamp):
        return (RANK_TIMESTAMP, value.time, value.inc)
    if isinstance(value, Regex):
        return (RANK_REGEX, value.pattern, str(value.flags))
    if isinstance(value, re.Pattern):
        return (RANK_REGEX, value.pattern, str(value.flags))
    if isinstance(value, MinKey):
        return (RANK_MINKEY,)
    if isinstance(value, MaxKey):
        return (RANK_MAXKEY,)
    if isinstance(value, Code):
        return (RANK_CODE, str(value))
    raise TypeError(f"unsupported value type {type(value).__name__}")


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1, as MongoDB compares two BSON values."""
    ka, kb = sort_key(a), sort_key(b)
    return (ka > kb) - (ka < kb)


def values_equal(a: Any, b: Any) -> bool:
    """Equality as `$eq` sees it: same canonical type and same value (1 == 1.0)."""
    return sort_key(a) == sort_key(b)


# $type aliases and numbers (https://www.mongodb.com/docs/manual/reference/operator/query/type/).
TYPE_ALIASES: dict[str, int] = {
    "double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6,
    "objectId": 7, "bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12,
    "javascript": 13, "symbol": 14, "javascriptWithScope": 15, "int": 16,
    "timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def bson_type_number(value: Any) -> int:
    """The BSON type number of a Python value (int becomes int or long by magnitude)."""
    if value is None:
        return 10
    if isinstance(value, bool):
        return 8
    if isinstance(value, Int64):
        return 18
    if isinstance(value, int):
        return 16 if INT32_MIN <= value <= INT32_MAX else 18
    if isinstance(value, float):
        return 1
    if isinstance(value, Decimal128):
        return 19
    if isinstance(value, str):
        return 2
    if isinstance(value, dict):
        return 3
    if isinstance(value, (list, tuple)):
        return 4
    if isinstance(value, (bytes, Binary)):
        return 5
    if isinstance(value, ObjectId):
        return 7
    if isinstance(value, datetime.datetime):
        return 9
    if isinstance(value, (Regex, re.Pattern)):
        return 11
    if isinstance(value, Code):
        return 13
    if isinstance(value, Timestamp):
        return 17
    if isinstance(value, MinKey):
        return -1
    if isinstance(value, MaxKey):
        return 127
    raise TypeError(f"unsupported value type {type(value).__name__}")


def to_decimal(value: int | float | Decimal128) -> Decimal:
    """Exact decimal form of a number, for arithmetic that must not lose precision."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return Decimal(value)
