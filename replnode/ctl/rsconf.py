"""Client-side edits of a replica set config, as mongosh's rs.add / rs.remove / rs.reconfig do.

Owns building the next config document from the current one: bump `version`,
pick the next free member `_id`, fill member fields the server would otherwise
reject (hidden, delayed and non-index-building members need priority 0). Pure:
takes and returns documents; never sends anything.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from replnode.ctl.client import CtlError, normalize_host

VOTING_MEMBERS_MAX = 7  # MongoDB: at most 7 voting members


@dataclass(frozen=True, slots=True)
class MemberOptions:
    """What `replctl add` was told about the new member."""

    priority: float | None = None
    votes: int | None = None
    hidden: bool = False
    delay_secs: int = 0
    build_indexes: bool = True
    arbiter: bool = False


def strip_config(doc: dict[str, Any]) -> dict[str, Any]:
    """Accept `replctl conf` output ({config: ...}) as well as a bare config document."""
    if "config" in doc and isinstance(doc["config"], dict) and "_id" not in doc:
        doc = doc["config"]
    if not isinstance(doc.get("members"), list):
        raise CtlError("a replica set config needs a 'members' array")
    return copy.deepcopy(doc)


def next_member_id(config: dict[str, Any]) -> int:
    """max(_id) + 1, as rs.add does; 0 for an empty set."""
    ids = [int(m.get("_id", -1)) for m in config.get("members", [])]
    return max(ids, default=-1) + 1


def find_member(config: dict[str, Any], host: str) -> dict[str, Any] | None:
    """The member whose host is `host` (normalized), if any."""
    want = normalize_host(host)
    for m in config.get("members", []):
        if normalize_host(str(m.get("host", ""))) == want:
            return dict(m)
    return None


def member_document(
    config: dict[str, Any], host: str, opts: MemberOptions
) -> tuple[dict[str, Any], list[str]]:
    """The new member's document and notes about values chosen for the user."""
    notes: list[str] = []
    member: dict[str, Any] = {"_id": next_member_id(config), "host": normalize_host(host)}
    voters = sum(1 for m in config.get("members", []) if int(m.get("votes", 1)) > 0)
    votes = opts.votes
    priority = opts.priority
    if votes is None and voters >= VOTING_MEMBERS_MAX:
        votes = 0
        notes.append(
            f"the set already has {voters} voting members; the new member gets "
            "votes: 0, priority: 0"
        )
    if opts.arbiter:
        member["arbiterOnly"] = True
        priority = 0 if priority is None else priority
    needs_zero = opts.hidden or opts.delay_secs > 0 or not opts.build_indexes or votes == 0
    if needs_zero and priority is None:
        priority = 0
        notes.append(
            "priority set to 0 (hidden, delayed, non-voting and non-index-building "
            "members cannot become primary)"
        )
    if priority is not None:
        member["priority"] = priority
    if votes is not None:
        member["votes"] = votes
    if opts.hidden:
        member["hidden"] = True
    if opts.delay_secs:
        member["secondaryDelaySecs"] = int(opts.delay_secs)
    if not opts.build_indexes:
        member["buildIndexes"] = False
    return member, notes


def with_member_added(
    config: dict[str, Any], host: str, opts: MemberOptions
) -> tuple[dict[str, Any], list[str]]:
    """The next config: current members plus the new one, version + 1."""
    if find_member(config, host) is not None:
        raise CtlError(f"{normalize_host(host)} is already a member of {config.get('_id')}")
    new = strip_config(config)
    member, notes = member_document(new, host, opts)
    new["members"].append(member)
    new["version"] = int(new.get("version", 0)) + 1
    return new, notes


def with_member_removed(config: dict[str, Any], host: str) -> dict[str, Any]:
    """The next config without `host`, version + 1; error naming the members if absent."""
    if find_member(config, host) is None:
        hosts = ", ".join(str(m.get("host")) for m in config.get("members", []))
        raise CtlError(
            f"{normalize_host(host)} is not a member of {config.get('_id')} (members: {hosts})"
        )
    new = strip_config(config)
    want = normalize_host(host)
    new["members"] = [m for m in new["members"] if normalize_host(str(m.get("host", ""))) != want]
    new["version"] = int(new.get("version", 0)) + 1
    return new


def with_version_after(new: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """rs.reconfig: the new config's version is the current one + 1."""
    out = strip_config(new)
    out["version"] = int(current.get("version", 0)) + 1
    out.pop("term", None)
    return out


def initiate_config(
    set_name: str,
    hosts: list[str],
    arbiters: list[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """{_id, version: 1, members: [...], settings} for replSetInitiate."""
    members: list[dict[str, Any]] = [
        {"_id": i, "host": normalize_host(h)} for i, h in enumerate(hosts)
    ]
    for h in arbiters or []:
        members.append({"_id": len(members), "host": normalize_host(h), "arbiterOnly": True})
    doc: dict[str, Any] = {"_id": set_name, "version": 1, "members": members}
    if settings:
        doc["settings"] = dict(settings)
    return doc


def parse_settings(text: str) -> dict[str, Any]:
    """'heartbeatIntervalMillis=500,electionTimeoutMillis=2000' -> a settings document."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CtlError(f"--settings expects key=value pairs, not {part!r}")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out
