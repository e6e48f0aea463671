"""Replica set configuration: the document users pass to replSetInitiate/replSetReconfig.

Owns parsing, validation (MongoDB's rules, each failure a clear 93
InvalidReplicaSetConfig message), comparison of configs by (term, version), and
the majority arithmetic that follows from a config. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from replnode import limits
from replnode.domain import MemberId
from replnode.errors import CommandError

UNINITIALIZED_VERSION = -2
FORCE_TERM = -1


class InvalidConfig(CommandError):
    """Raised when a replica set config document breaks a validation rule."""

    def __init__(self, errmsg: str, code_name: str = "InvalidReplicaSetConfig") -> None:
        super().__init__(code_name, errmsg)


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """One entry of `members`; defaults as MongoDB's."""

    id: MemberId
    host: str
    priority: float = 1.0
    votes: int = 1
    hidden: bool = False
    arbiter_only: bool = False
    build_indexes: bool = True
    secondary_delay_secs: int = 0
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def electable(self) -> bool:
        """Whether this member may ever stand for election."""
        return self.priority > 0 and not self.arbiter_only and self.votes > 0

    @property
    def is_voter(self) -> bool:
        return self.votes > 0

    @property
    def holds_data(self) -> bool:
        return not self.arbiter_only

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": int(self.id), "host": self.host, "arbiterOnly": self.arbiter_only,
            "buildIndexes": self.build_indexes, "hidden": self.hidden,
            "priority": _num(self.priority), "tags": dict(self.tags),
            "secondaryDelaySecs": self.secondary_delay_secs, "votes": self.votes,
        }


@dataclass(frozen=True, slots=True)
class Settings:
    """The `settings` sub-document; defaults as MongoDB's."""

    chaining_allowed: bool = True
    heartbeat_interval_ms: int = limits.heartbeat_interval_ms_default
    heartbeat_timeout_secs: int = limits.heartbeat_timeout_secs_default
    election_timeout_ms: int = limits.election_timeout_ms_default
    catch_up_timeout_ms: int = limits.catchup_timeout_ms_default
    catch_up_takeover_delay_ms: int = 30_000
    replica_set_id: str = ""

    def to_document(self) -> dict[str, Any]:
        return {
            "chainingAllowed": self.chaining_allowed,
            "heartbeatIntervalMillis": self.heartbeat_interval_ms,
            "heartbeatTimeoutSecs": self.heartbeat_timeout_secs,
            "electionTimeoutMillis": self.election_timeout_ms,
            "catchUpTimeoutMillis": self.catch_up_timeout_ms,
            "catchUpTakeoverDelayMillis": self.catch_up_takeover_delay_ms,
            "getLastErrorModes": {},
            "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
            "replicaSetId": self.replica_set_id,
        }


@dataclass(frozen=True, slots=True)
class ReplSetConfig:
    """A validated replica set config. Compare configs with `is_newer_than`."""

    set_name: str
    version: int
    term: int
    members: tuple[MemberConfig, ...]
    settings: Settings = field(default_factory=Settings)
    write_concern_majority_journal_default: bool = True

    # --- lookups ---
    def member(self, member_id: int) -> MemberConfig | None:
        for m in self.members:
            if m.id == member_id:
                return m
        return None

    def member_by_host(self, host: str) -> MemberConfig | None:
        wanted = normalize_host(host)
        for m in self.members:
            if normalize_host(m.host) == wanted:
                return m
        return None

    @property
    def voters(self) -> tuple[MemberConfig, ...]:
        return tuple(m for m in self.members if m.is_voter)

    @property
    def majority_vote_count(self) -> int:
        """Votes needed to win an election: a strict majority of voting members."""
        return len(self.voters) // 2 + 1

    @property
    def write_majority(self) -> int:
        """Voting data-bearing members that must hold a write for w:majority."""
        writable_voters = sum(1 for m in self.voters if m.holds_data)
        return min(self.majority_vote_count, writable_voters)

    def is_newer_than(self, other: ReplSetConfig | None) -> bool:
        """(term, version) order; a force-reconfig term (-1) compares versions only."""
        if other is None:
            return True
        if self.term == FORCE_TERM or other.term == FORCE_TERM:
            return self.version > other.version
        return (self.term, self.version) > (other.term, other.version)

    def with_term(self, term: int) -> ReplSetConfig:
        return replace(self, term=term)

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.set_name, "version": self.version, "term": self.term,
            "protocolVersion": 1,
            "writeConcernMajorityJournalDefault": self.write_concern_majority_journal_default,
            "members": [m.to_document() for m in self.members],
            "settings": self.settings.to_document(),
        }


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def normalize_host(host: str) -> str:
    """Lower-case, default port 27017, so 'LocalHost' and 'localhost:27017' match."""
    host = host.strip().lower()
    if host.startswith("["):
        return host if "]:" in host else host + ":27017"
    if host.count(":") == 1:
        return host
    if host.count(":") > 1:  # bare IPv6 address
        return f"[{host}]:27017"
    return host + ":27017"


def split_host(host: str) -> tuple[str, int]:
    """('h', port) from 'h:port' or '[v6]:port'; raises ValueError when malformed."""
    norm = normalize_host(host)
    name, _, port_text = norm.rpartition(":")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    port = int(port_text)
    if not name or not 0 < port < 65536:
        raise ValueError(f"bad host {host!r}")
    return name, port


def is_local_host(name: str) -> bool:
    return name in ("localhost", "::1") or name.startswith("127.")


# ---------------------------------------------------------------- parsing

_MEMBER_FIELDS = {"_id", "host", "priority", "votes", "hidden", "arbiterOnly", "buildIndexes",
                  "secondaryDelaySecs", "slaveDelay", "tags", "newlyAdded"}
_SETTINGS_FIELDS = {"chainingAllowed", "heartbeatIntervalMillis", "heartbeatTimeoutSecs",
                    "electionTimeoutMillis", "catchUpTimeoutMillis", "catchUpTakeoverDelayMillis",
                    "getLastErrorModes", "getLastErrorDefaults", "replicaSetId"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
         where: str) -> Any:
    if key not in doc:
        return default
    value = doc[key]
    if kind in (int, float) or kind == (int, float):
        if not _is_number(value):
            raise InvalidConfig(f"{where}.{key} field value must be a number, not "
                                f"{type(value).__name__}")
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidConfig(f"{where}.{key} field value must be of type {name}")
    return value


def _parse_member(doc: Any, index: int) -> MemberConfig:
    where = f"members[{index}]"
    if not isinstance(doc, dict):
        raise InvalidConfig(f"{where} must be an object")
    unknown = set(doc) - _MEMBER_FIELDS
    if unknown:
        raise InvalidConfig(f"Unexpected field {sorted(unknown)[0]} in replica set member "
                            "configuration")
    if "_id" not in doc:
        raise InvalidConfig(f"{where} is missing the required field _id")
    if "host" not in doc:
        raise InvalidConfig(f"{where} is missing the required field host")
    member_id = _get(doc, "_id", (int, float), 0, where)
    if int(member_id) != member_id or member_id < 0:
        raise InvalidConfig(f"{where}._id must be a non-negative integer, not {member_id}")
    host = _get(doc, "host", str, "", where)
    try:
        split_host(host)
    except ValueError:
        raise InvalidConfig(f"{where}.host {host!r} is not a valid host:port") from None
    arbiter = bool(_get(doc, "arbiterOnly", bool, False, where))
    priority = float(_get(doc, "priority", (int, float), 0 if arbiter else 1, where))
    if arbiter and priority == 1 and "priority" in doc:
        priority = 0.0  # MongoDB turns an arbiter's explicit default 1 into 0
    votes = _get(doc, "votes", (int, float), 1, where)
    delay = _get(doc, "secondaryDelaySecs", (int, float), None, where)
    if delay is None:
        delay = _get(doc, "slaveDelay", (int, float), 0, where)
    tags_doc = _get(doc, "tags", dict, {}, where)
    for key, value in tags_doc.items():
        if not isinstance(value, str):
            raise InvalidConfig(f"{where}.tags.{key} must be a string")
    if doc.get("newlyAdded") is not None:
        raise InvalidConfig(f"{where}: newlyAdded is an internal field and cannot be set")
    return MemberConfig(
        id=MemberId(int(member_id)), host=host.strip(), priority=priority, votes=int(votes),
        hidden=bool(_get(doc, "hidden", bool, False, where)), arbiter_only=arbiter,
        build_indexes=bool(_get(doc, "buildIndexes", bool, True, where)),
        secondary_delay_secs=int(delay), tags=tuple(sorted(tags_doc.items())),
    )


def _parse_settings(doc: Any) -> Settings:
    if doc is None:
        return Settings()
    if not isinstance(doc, dict):
        raise InvalidConfig("settings must be an object")
    unknown = set(doc) - _SETTINGS_FIELDS
    if unknown:
        raise InvalidConfig(f"Unexpected field {sorted(unknown)[0]} in replica set settings")
    w = "settings"
    defaults = doc.get("getLastErrorDefaults")
    if defaults is not None and (not isinstance(defaults, dict)
                                 or defaults.get("w", 1) != 1 or defaults.get("wtimeout", 0) != 0):
        raise InvalidConfig("getLastErrorDefaults must be {w: 1, wtimeout: 0}; custom write "
                            "concern defaults are set with setDefaultRWConcern")
    rs_id = doc.get("replicaSetId", "")
    return Settings(
        chaining_allowed=bool(_get(doc, "chainingAllowed", bool, True, w)),
        heartbeat_interval_ms=int(_get(doc, "heartbeatIntervalMillis", (int, float),
                                       limits.heartbeat_interval_ms_default, w)),
        heartbeat_timeout_secs=int(_get(doc, "heartbeatTimeoutSecs", (int, float),
                                        limits.heartbeat_timeout_secs_default, w)),
        election_timeout_ms=int(_get(doc, "electionTimeoutMillis", (int, float),
                                     limits.election_timeout_ms_default, w)),
        catch_up_timeout_ms=int(_get(doc, "catchUpTimeoutMillis", (int, float),
                                     limits.catchup_timeout_ms_default, w)),
        catch_up_takeover_delay_ms=int(_get(doc, "catchUpTakeoverDelayMillis", (int, float),
                                            30_000, w)),
        replica_set_id=str(rs_id),
    )


def parse_config(doc: Any) -> ReplSetConfig:
    """Parse and validate a config document; raises InvalidConfig naming the first problem."""
    if not isinstance(doc, dict):
        raise InvalidConfig("replica set config must be an object")
    set_name = doc.get("_id")
    if not isinstance(set_name, str) or not set_name:
        raise InvalidConfig("replica set config _id (the set name) must be a non-empty string")
    version = _get(doc, "version", (int, float), 1, "config")
    if int(version) != version or not 1 <= version <= 2**31 - 1:
        raise InvalidConfig(f"version field value of {version} is out of range")
    term = _get(doc, "term", (int, float), FORCE_TERM, "config")
    pv = doc.get("protocolVersion", 1)
    if pv != 1:
        raise InvalidConfig("protocolVersion must be 1")
    members_doc = doc.get("members")
    if not isinstance(members_doc, list) or not members_doc:
        raise InvalidConfig("members must be a non-empty array")
    members = tuple(_parse_member(m, i) for i, m in enumerate(members_doc))
    config = ReplSetConfig(
        set_name=set_name, version=int(version), term=int(term), members=members,
        settings=_parse_settings(doc.get("settings")),
        write_concern_majority_journal_default=bool(
            doc.get("writeConcernMajorityJournalDefault", True)),
    )
    validate_config(config)
    return config


def validate_config(config: ReplSetConfig) -> None:
    """MongoDB's validation rules for a config on its own (not relative to an old one)."""
    members = config.members
    if len(members) > limits.members_max:
        raise InvalidConfig(f"Replica set configuration contains {len(members)} members, but "
                            f"must have at most {limits.members_max}")
    ids: set[int] = set()
    hosts: set[str] = set()
    for m in members:
        _validate_member(m)
        if m.id in ids:
            raise InvalidConfig(f"Found two member configurations with same _id field, "
                                f"members._id == {m.id}")
        host = normalize_host(m.host)
        if host in hosts:
            raise InvalidConfig(f"Found two member configurations with same host field, "
                                f"members.host == {m.host}")
        ids.add(m.id)
        hosts.add(host)
    local = [is_local_host(split_host(m.host)[0]) for m in members]
    if any(local) and not all(local):
        raise InvalidConfig("Either all host names in a replica set configuration must be "
                            "localhost references, or none must be; found a mix")
    voters = [m for m in members if m.is_voter]
    if not voters:
        raise InvalidConfig("Replica set configuration must contain at least one voting member")
    if len(voters) > limits.voting_members_max:
        raise InvalidConfig(f"Replica set configuration contains {len(voters)} voting members, "
                            f"but must be at most {limits.voting_members_max}")
    if not any(m.electable for m in members):
        raise InvalidConfig("Replica set configuration must contain at least one non-arbiter "
                            "member with priority > 0")
    s = config.settings
    if s.heartbeat_interval_ms <= 0:
        raise InvalidConfig("settings.heartbeatIntervalMillis must be greater than 0")
    if s.heartbeat_timeout_secs <= 0:
        raise InvalidConfig("settings.heartbeatTimeoutSecs must be greater than 0")
    if s.election_timeout_ms <= 0:
        raise InvalidConfig("settings.electionTimeoutMillis must be greater than 0")


def _validate_member(m: MemberConfig) -> None:
    where = f"member {m.host} (_id {m.id})"
    if not 0 <= m.priority <= limits.priority_max:
        raise InvalidConfig(f"priority field value of {_num(m.priority)} for {where} is out of "
                            f"range [0, {limits.priority_max}]")
    if m.votes not in (0, 1):
        raise InvalidConfig(f"votes field value is {m.votes} for {where}, but must be 0 or 1")
    if not 0 <= m.secondary_delay_secs <= limits.secondary_delay_secs_max:
        raise InvalidConfig(f"secondaryDelaySecs for {where} is out of range")
    if m.arbiter_only:
        if m.priority != 0:
            raise InvalidConfig(f"priority must be 0 when arbiterOnly=true ({where})")
        if m.votes != 1:
            raise InvalidConfig(f"arbiter {where} must vote (it cannot have 0 votes)")
        if m.tags:
            raise InvalidConfig(f"arbiter {where} cannot have tags")
        return
    if m.priority > 0:
        if m.votes == 0:
            raise InvalidConfig(f"priority must be 0 when non-voting (votes:0) ({where})")
        if m.hidden:
            raise InvalidConfig(f"priority must be 0 when hidden=true ({where})")
        if m.secondary_delay_secs:
            raise InvalidConfig(f"priority must be 0 when secondaryDelaySecs is used ({where})")
        if not m.build_indexes:
            raise InvalidConfig(f"priority must be 0 when buildIndexes=false ({where})")


def voter_change_count(old: ReplSetConfig, new: ReplSetConfig) -> int:
    """How many voting members a reconfig adds plus removes (safe reconfig allows one)."""
    old_voters = {normalize_host(m.host) for m in old.voters}
    new_voters = {normalize_host(m.host) for m in new.voters}
    return len(old_voters ^ new_voters)


def check_reconfig(old: ReplSetConfig, new: ReplSetConfig, *, force: bool) -> None:
    """Rules a new config must satisfy relative to the installed one."""
    if new.set_name != old.set_name:
        raise InvalidConfig(f"New and old configurations differ in replica set name; old was "
                            f"{old.set_name}, and new is {new.set_name}",
                            "NewReplicaSetConfigurationIncompatible")
    if new.version <= old.version and not force:
        raise InvalidConfig(f"New config version {new.version} must be greater than the current "
                            f"version {old.version}", "NewReplicaSetConfigurationIncompatible")
    if (old.settings.replica_set_id and new.settings.replica_set_id
            and old.settings.replica_set_id != new.settings.replica_set_id):
        raise InvalidConfig("New and old configurations differ in replicaSetId",
                            "NewReplicaSetConfigurationIncompatible")
    for m in new.members:
        prev = old.member_by_host(m.host)
        if prev is not None and prev.id != m.id:
            raise InvalidConfig(f"New and old configurations both have members with host of "
                                f"{m.host} but in the new configuration the _id field is {m.id} "
                                f"and in the old configuration it is {prev.id}",
                                "NewReplicaSetConfigurationIncompatible")
        prev_by_id = old.member(m.id)
        if prev_by_id is not None and normalize_host(prev_by_id.host) == normalize_host(m.host):
            if prev_by_id.arbiter_only != m.arbiter_only:
                raise InvalidConfig(f"New and old configurations differ in the setting of the "
                                    f"arbiterOnly field for member {m.host}; to make a node an "
                                    f"arbiter or vice versa, remove it and add it back",
                                    "NewReplicaSetConfigurationIncompatible")
            if prev_by_id.build_indexes != m.build_indexes:
                raise InvalidConfig(f"New and old configurations differ in the setting of the "
                                    f"buildIndexes field for member {m.host}",
                                    "NewReplicaSetConfigurationIncompatible")
    if not force and voter_change_count(old, new) > 1:
        raise InvalidConfig("Non force replica set reconfig can only add or remove at most 1 "
                            "voting member", "NewReplicaSetConfigurationIncompatible")
