"""MongoDB-shaped replies built from a member's state: replSetGetStatus, hello, and friends.

Owns presentation only: field names, types (Timestamp, dates), the order of
members. Reads the `Node` and never changes it. Pure: time comes in as
arguments.
"""

from __future__ import annotations

import datetime
from typing import Any

from bson import Int64, ObjectId, Timestamp

from replnode import limits
from replnode.core.node import Node
from replnode.core.topology import MemberView
from replnode.domain import NULL_OPTIME, MemberState, OpTime, ts_inc, ts_secs
from replnode.errors import CommandError
from replnode.storage.values import ms_to_datetime

STATE_STR = {s: s.name for s in MemberState}


def optime_doc(optime: OpTime) -> dict[str, Any]:
    """{ts: Timestamp, t: NumberLong}, MongoDB's OpTime shape."""
    if optime.is_null():
        return {"ts": Timestamp(0, 0), "t": Int64(-1)}
    return {"ts": Timestamp(ts_secs(optime.ts), ts_inc(optime.ts)), "t": Int64(optime.term)}


def optime_date(optime: OpTime) -> datetime.datetime:
    return ms_to_datetime(ts_secs(optime.ts) * 1000 if not optime.is_null() else 0)


def wall_date(wall_ms: int) -> datetime.datetime:
    return ms_to_datetime(max(wall_ms, 0))


def election_id(term: int) -> ObjectId:
    """An ObjectId made from the term, as MongoDB's OID::fromTerm."""
    return ObjectId(b"\x7f\xff\xff\xff" + term.to_bytes(8, "big", signed=True))


def _require_config(node: Node) -> None:
    if node.standalone:
        raise CommandError("NoReplicationEnabled", "not running with --replSet")
    if node.config is None:
        raise CommandError("NotYetInitialized", "no replset config has been received")


def replset_get_status(node: Node, now_ms: int) -> dict[str, Any]:
    """replSetGetStatus (rs.status())."""
    _require_config(node)
    assert node.config is not None
    cfg = node.config
    wall = node.wall_ms()
    if node.state == MemberState.REMOVED:
        raise CommandError("InvalidReplicaSetConfig",
                           "Our replica set config is invalid or we are not a member of it")
    members = []
    for m in sorted(cfg.members, key=lambda m: m.id):
        if m.id == node.my_id:
            members.append(_self_member(node, now_ms))
        else:
            view = node.views.get(m.id)
            if view is not None:
                members.append(_other_member(node, view, now_ms))
    voters = len(cfg.voters)
    writable_voters = sum(1 for m in cfg.voters if m.holds_data)
    reply: dict[str, Any] = {
        "set": cfg.set_name,
        "date": wall_date(wall),
        "myState": int(node.state),
        "term": Int64(node.term),
        "syncSourceHost": node.sync_source,
        "syncSourceId": _member_id_of(node, node.sync_source),
        "heartbeatIntervalMillis": Int64(cfg.settings.heartbeat_interval_ms),
        "majorityVoteCount": cfg.majority_vote_count,
        "writeMajorityCount": cfg.write_majority,
        "votingMembersCount": voters,
        "writableVotingMembersCount": writable_voters,
        "optimes": {
            "lastCommittedOpTime": optime_doc(node.commit_point),
            "lastCommittedWallTime": wall_date(node.commit_point_wall_ms),
            "readConcernMajorityOpTime": optime_doc(node.commit_point),
            "appliedOpTime": optime_doc(node.applied),
            "durableOpTime": optime_doc(node.durable),
            "lastAppliedWallTime": wall_date(node.applied_wall_ms),
            "lastDurableWallTime": wall_date(node.durable_wall_ms),
        },
        "members": members,
        "ok": 1.0,
    }
    if node.too_stale:
        reply["tooStale"] = True
    if node.initial_sync is not None:
        reply["initialSyncStatus"] = node.initial_sync.status_document(now_ms,
                                                                       node.wall_offset_ms)
    if node.last_rollback is not None:
        rb = node.last_rollback
        reply["lastRollback"] = {
            "rollbackId": rb.rollback_id, "commonPoint": optime_doc(rb.common_point),
            "date": wall_date(rb.wall_ms), "syncSource": rb.source,
            "documentsRolledBack": dict(rb.namespaces),
            "rollbackDirectory": "rollback/",
        }
    if node.elections_won and node.state == MemberState.PRIMARY:
        reply["electionCandidateMetrics"] = {
            "lastElectionDate": wall_date(node.election_time_ms), "electionTerm": node.term,
            "numVotesNeeded": cfg.majority_vote_count,
            "priorityAtElection": node.me.priority if node.me else 0,
            "electionTimeoutMillis": cfg.settings.election_timeout_ms,
        }
    return reply


def _member_id_of(node: Node, host: str) -> int:
    if not host or node.config is None:
        return -1
    member = node.config.member_by_host(host)
    return member.id if member is not None else -1


def _self_member(node: Node, now_ms: int) -> dict[str, Any]:
    assert node.me is not None and node.config is not None
    me = node.me
    doc: dict[str, Any] = {
        "_id": me.id, "name": me.host, "health": 1.0, "state": int(node.state),
        "stateStr": STATE_STR[node.state], "uptime": (now_ms - node.start_ms) // 1000,
        "optime": optime_doc(node.applied), "optimeDate": optime_date(node.applied),
        "optimeDurable": optime_doc(node.durable),
        "optimeDurableDate": optime_date(node.durable),
        "lastAppliedWallTime": wall_date(node.applied_wall_ms),
        "lastDurableWallTime": wall_date(node.durable_wall_ms),
        "syncSourceHost": node.sync_source, "syncSourceId": _member_id_of(node, node.sync_source),
        "infoMessage": node.info_message or _default_info(node),
        "configVersion": node.config.version, "configTerm": node.config.term, "self": True,
        "lastHeartbeatMessage": "",
    }
    if node.state == MemberState.PRIMARY:
        doc["electionTime"] = Timestamp(node.election_time_ms // 1000, 1)
        doc["electionDate"] = wall_date(node.election_time_ms)
    if node.maintenance:
        doc["maintenanceMode"] = node.maintenance
    return doc


def _default_info(node: Node) -> str:
    if node.state == MemberState.SECONDARY and node.sync_source:
        return f"syncing from: {node.sync_source}"
    if node.state == MemberState.STARTUP2:
        return "initial sync in progress"
    return ""


def _other_member(node: Node, view: MemberView, now_ms: int) -> dict[str, Any]:
    state = view.reported_state()
    health = 1.0 if view.health == 1 else 0.0
    last_hb = view.last_heartbeat_ms
    last_recv = view.last_heartbeat_recv_ms
    doc: dict[str, Any] = {
        "_id": view.member_id, "name": view.host, "health": health, "state": int(state),
        "stateStr": STATE_STR[state] if health else "(not reachable/healthy)",
        "uptime": (now_ms - view.up_since_ms) // 1000 if view.health == 1 and
        view.up_since_ms >= 0 else 0,
        "optime": optime_doc(view.applied), "optimeDurable": optime_doc(view.durable),
        "optimeDate": optime_date(view.applied), "optimeDurableDate": optime_date(view.durable),
        "lastAppliedWallTime": wall_date(view.applied_wall_ms),
        "lastDurableWallTime": wall_date(view.durable_wall_ms),
        "lastHeartbeat": wall_date(last_hb + node.wall_offset_ms) if last_hb >= 0 else
        wall_date(0),
        "lastHeartbeatRecv": wall_date(last_recv + node.wall_offset_ms) if last_recv >= 0 else
        wall_date(0),
        "pingMs": Int64(int(view.ping_ms)) if view.ping_ms is not None else Int64(0),
        "lastHeartbeatMessage": view.last_heartbeat_message,
        "syncSourceHost": view.sync_source, "syncSourceId": _member_id_of(node, view.sync_source),
        "infoMessage": "", "configVersion": view.config_version, "configTerm": view.config_term,
    }
    if state == MemberState.PRIMARY and view.election_time_ms:
        doc["electionTime"] = Timestamp(view.election_time_ms // 1000, 1)
        doc["electionDate"] = wall_date(view.election_time_ms)
    return doc


def hello(node: Node, now_ms: int, process_id: ObjectId, topology_counter: int) -> dict[str, Any]:
    """hello / isMaster: what drivers use to discover the set."""
    wall = node.wall_ms()
    base: dict[str, Any] = {
        "isWritablePrimary": node.is_writable_primary,
        "ismaster": node.is_writable_primary,
        "topologyVersion": {"processId": process_id, "counter": Int64(topology_counter)},
        "maxBsonObjectSize": limits.document_bytes_max,
        "maxMessageSizeBytes": limits.request_body_bytes_max,
        "maxWriteBatchSize": limits.write_batch_docs_max,
        "localTime": wall_date(wall),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 17,
        "readOnly": False,
    }
    if node.standalone:
        return {**base, "ok": 1.0}
    base["secondary"] = node.state == MemberState.SECONDARY
    if node.config is None:
        base["isreplicaset"] = True
        base["info"] = "Does not have a valid replica set config"
        return {**base, "ok": 1.0}
    cfg = node.config
    hosts = [m.host for m in cfg.members
             if m.electable and not m.hidden and not m.secondary_delay_secs]
    passives = [m.host for m in cfg.members if not m.arbiter_only and not m.electable
                and not m.hidden and not m.secondary_delay_secs]
    arbiters = [m.host for m in cfg.members if m.arbiter_only]
    reply: dict[str, Any] = {**base, "setName": cfg.set_name, "setVersion": cfg.version,
                             "hosts": hosts}
    if passives:
        reply["passives"] = passives
    if arbiters:
        reply["arbiters"] = arbiters
    if node.primary_host:
        reply["primary"] = node.primary_host
    me = node.me
    if me is not None:
        reply["me"] = me.host
        if me.arbiter_only:
            reply["arbiterOnly"] = True
        elif me.priority == 0:
            reply["passive"] = True
        if me.hidden:
            reply["hidden"] = True
        if me.secondary_delay_secs:
            reply["secondaryDelaySecs"] = me.secondary_delay_secs
        if not me.build_indexes:
            reply["buildIndexes"] = False
        if me.tags:
            reply["tags"] = dict(me.tags)
    if node.state == MemberState.PRIMARY:
        reply["electionId"] = election_id(node.term)
    if node.state in (MemberState.PRIMARY, MemberState.SECONDARY):
        reply["lastWrite"] = {
            "opTime": optime_doc(node.applied), "lastWriteDate": wall_date(node.applied_wall_ms),
            "majorityOpTime": optime_doc(node.commit_point),
            "majorityWriteDate": wall_date(node.commit_point_wall_ms),
        }
    reply["ok"] = 1.0
    return reply


def replset_get_config(node: Node) -> dict[str, Any]:
    _require_config(node)
    assert node.config is not None
    return {"config": node.config.to_document(), "ok": 1.0}


def replication_info(node: Node) -> dict[str, Any]:
    """getReplicationInfo: what rs.printReplicationInfo() prints."""
    oplog = node.oplog
    first = oplog.first_record()
    last = oplog.last_record()
    t_first = int(first.entry.get("wall", 0)) if first is not None else 0
    t_last = int(last.entry.get("wall", 0)) if last is not None else 0
    diff_s = max(0, (t_last - t_first) // 1000)
    return {
        "configuredLogSizeMB": round(oplog.size_bytes_max / 1024 / 1024, 3),
        "logSizeMB": round(max(oplog.size_bytes_max, oplog.bytes_used) / 1024 / 1024, 3),
        "usedMB": round(oplog.bytes_used / 1024 / 1024, 3),
        "timeDiff": diff_s,
        "timeDiffHours": round(diff_s / 3600, 2),
        "tFirst": wall_date(t_first),
        "tLast": wall_date(t_last),
        "now": wall_date(node.wall_ms()),
        "entries": len(oplog),
        "ok": 1.0,
    }


def secondary_replication_info(node: Node) -> dict[str, Any]:
    """rs.printSecondaryReplicationInfo(): each secondary's lag behind the primary."""
    _require_config(node)
    assert node.config is not None
    if node.state == MemberState.PRIMARY:
        primary_wall = node.applied_wall_ms
    else:
        pv = node._primary_view()  # noqa: SLF001 - read-only
        primary_wall = pv.applied_wall_ms if pv is not None else node.applied_wall_ms
    rows = []
    for m in sorted(node.config.members, key=lambda m: m.id):
        if m.arbiter_only:
            continue
        if m.id == node.my_id:
            state, wall, optime = node.state, node.applied_wall_ms, node.applied
        else:
            view = node.views.get(m.id)
            if view is None:
                continue
            state, wall, optime = view.reported_state(), view.applied_wall_ms, view.applied
        if state == MemberState.PRIMARY:
            continue
        lag_s = (primary_wall - wall) / 1000 if wall else None
        rows.append({
            "source": m.host, "state": STATE_STR[state], "syncedTo": wall_date(wall),
            "optime": optime_doc(optime),
            "lagSecs": round(lag_s, 3) if lag_s is not None else None,
            "behindPrimary": (f"{lag_s:.0f} secs ({lag_s / 3600:.2f} hrs) behind the primary"
                              if lag_s is not None else "no data"),
        })
    return {"members": rows, "primaryOptimeDate": wall_date(primary_wall), "ok": 1.0}


__all__ = ["replset_get_status", "hello", "replset_get_config", "replication_info",
           "secondary_replication_info", "optime_doc", "NULL_OPTIME"]
