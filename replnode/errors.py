"""One exception tree for replnode, with MongoDB's error codes.

`CommandError` is what a client sees: `{ok: 0, errmsg, code, codeName}`. Every
client-facing failure is one, so the HTTP layer maps any error with one lookup.
`InvariantViolation` is a programmer error: the process logs it and exits.
"""

from __future__ import annotations

from typing import Any

# MongoDB's numeric codes, by codeName (src/mongo/base/error_codes.yml).
CODES: dict[str, int] = {
    "InternalError": 1,
    "BadValue": 2,
    "NoSuchKey": 4,
    "HostUnreachable": 6,
    "HostNotFound": 7,
    "UnknownError": 8,
    "FailedToParse": 9,
    "Unauthorized": 13,
    "TypeMismatch": 14,
    "Overflow": 15,
    "IllegalOperation": 20,
    "NamespaceNotFound": 26,
    "IndexNotFound": 27,
    "PathNotViable": 28,
    "ConflictingUpdateOperators": 40,
    "CursorNotFound": 43,
    "NamespaceExists": 48,
    "MaxTimeMSExpired": 50,
    "DollarPrefixedFieldName": 52,
    "EmptyFieldName": 56,
    "DottedFieldName": 57,
    "CommandNotFound": 59,
    "ImmutableField": 66,
    "CannotCreateIndex": 67,
    "IndexAlreadyExists": 68,
    "InvalidOptions": 72,
    "InvalidNamespace": 73,
    "NodeNotFound": 74,
    "NoReplicationEnabled": 76,
    "IndexOptionsConflict": 85,
    "IndexKeySpecsConflict": 86,
    "ShutdownInProgress": 91,
    "InvalidReplicaSetConfig": 93,
    "NotYetInitialized": 94,
    "NotSecondary": 95,
    "UnsatisfiableWriteConcern": 100,
    "NewReplicaSetConfigurationIncompatible": 103,
    "ConfigurationInProgress": 109,
    "CommandNotSupported": 115,
    "InvalidSyncSource": 119,
    "OplogStartMissing": 120,
    "CommandFailed": 125,
    "FailedToSatisfyReadPreference": 133,
    "ReadConcernMajorityNotAvailableYet": 134,
    "OplogOutOfOrder": 152,
    "PrimarySteppedDown": 189,
    "TooStaleToSyncFromSource": 211,
    "ExceededTimeLimit": 262,
    "WriteConcernFailed": 64,
    "DuplicateKey": 11000,
    "InterruptedAtShutdown": 11600,
    "InterruptedDueToReplStateChange": 11602,
    "BSONObjectTooLarge": 10334,
    "NotWritablePrimary": 10107,
    "NotPrimaryNoSecondaryOk": 13435,
    "NotPrimaryOrSecondary": 13436,
    "Location40414": 40414,
    "InvalidIdField": 53,
    "NotSingleValueField": 54,
    "Location31250": 31250,
    "Location31253": 31253,
    "Location31254": 31254,
    "Location31255": 31255,
    "Location31276": 31276,
    "Location51091": 51091,
    "Location51108": 51108,
    "Location51109": 51109,
    "Location51270": 51270,
    "InvalidLength": 16,
    "CannotIndexParallelArrays": 171,
    "InvalidIndexSpecificationOption": 197,
    "NotImplemented": 238,
    "Location51024": 51024,
}


class ReplNodeError(Exception):
    """Root of every replnode exception."""


class ConfigError(ReplNodeError):
    """Raised when process options (CLI flags or YAML) are invalid; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class InvariantViolation(ReplNodeError):
    """Raised when an internal invariant breaks: a bug, never a client's fault."""


def invariant(condition: bool, message: str) -> None:
    """Check an invariant; unlike `assert`, this survives `python -O`."""
    if not condition:
        raise InvariantViolation(message)


class ProtocolError(ReplNodeError):
    """Raised when a message on the wire cannot be understood."""


class LocalProtocolError(ProtocolError):
    """Raised when we were about to send something malformed."""


class RemoteProtocolError(ProtocolError):
    """Raised when a peer or client sent something malformed."""


class CommandError(ReplNodeError):
    """Raised when a command fails in a way the client should see, with MongoDB's code."""

    http_status = 200

    def __init__(self, code_name: str, errmsg: str, **extra: Any) -> None:
        self.code_name = code_name
        self.code = CODES.get(code_name, 8)
        self.errmsg = errmsg
        self.extra = extra
        super().__init__(f"{code_name}: {errmsg}")

    def to_reply(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"ok": 0.0, "errmsg": self.errmsg, "code": self.code,
                                 "codeName": self.code_name}
        reply.update(self.extra)
        return reply


class BadRequestBody(CommandError):
    """Raised when a request body cannot be parsed at all (HTTP 400)."""

    http_status = 400

    def __init__(self, errmsg: str) -> None:
        super().__init__("FailedToParse", errmsg)


class BodyTooLarge(CommandError):
    """Raised when a request body or document exceeds its size limit (HTTP 413)."""

    http_status = 413

    def __init__(self, errmsg: str) -> None:
        super().__init__("BSONObjectTooLarge", errmsg)


class NotPrimaryError(CommandError):
    """Raised when a write reaches a member that is not the writable primary."""

    def __init__(self, primary: str | None, errmsg: str = "not primary") -> None:
        extra: dict[str, Any] = {}
        if primary:
            extra["primary"] = primary
            errmsg = f"{errmsg}; current primary is {primary}"
        super().__init__("NotWritablePrimary", errmsg, **extra)


class DuplicateKeyError(CommandError):
    """Raised when a write would put two documents under one unique index key."""

    def __init__(self, errmsg: str, key_pattern: dict[str, Any], key_value: dict[str, Any]):
        super().__init__("DuplicateKey", errmsg, keyPattern=key_pattern, keyValue=key_value)
