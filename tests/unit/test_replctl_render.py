"""replctl's printed verdicts, tables and reports, from canned server replies (no processes)."""

from __future__ import annotations

import datetime

import pytest
from bson import Int64, Timestamp

from replnode.ctl import render, rsconf
from replnode.ctl.client import CtlError, ServerError, from_json, normalize_host, parse_seeds
from replnode.ctl.main import build_parser

NOW = datetime.datetime(2026, 11, 23, 14, 0, 0)
T0 = 1_795_000_000


def optime(secs: int, term: int = 1) -> dict:
    return {"ts": Timestamp(secs, 1), "t": Int64(term)}


def member(
    i: int,
    state: int,
    *,
    secs: int = T0,
    health: float = 1.0,
    self_: bool = False,
    hb_age: float = 0.5,
    **extra,
) -> dict:
    doc = {
        "_id": i,
        "name": f"h{i}:27017",
        "health": health,
        "state": state,
        "stateStr": render.STATE_NAMES[state],
        "optime": optime(secs),
        "optimeDate": datetime.datetime.fromtimestamp(secs, datetime.UTC).replace(tzinfo=None),
        "syncSourceHost": "" if state == 1 else "h0:27017",
        "infoMessage": "",
        "configVersion": 1,
        "lastHeartbeatMessage": "",
    }
    if self_:
        doc["self"] = True
    else:
        doc["lastHeartbeat"] = NOW - datetime.timedelta(seconds=hb_age)
        doc["lastHeartbeatRecv"] = NOW - datetime.timedelta(seconds=hb_age)
        doc["pingMs"] = Int64(2)
    doc.update(extra)
    return doc


def status(*members: dict, **extra) -> dict:
    doc = {
        "set": "rs0",
        "date": NOW,
        "myState": 1,
        "term": Int64(3),
        "members": list(members),
        "ok": 1.0,
    }
    doc.update(extra)
    return doc


def config(*hosts: str, arbiters: tuple[str, ...] = ()) -> dict:
    members = [{"_id": i, "host": h, "votes": 1} for i, h in enumerate(hosts)]
    members += [
        {"_id": len(members) + i, "host": h, "votes": 1, "arbiterOnly": True}
        for i, h in enumerate(arbiters)
    ]
    return {"_id": "rs0", "version": 4, "members": members}


def healthy_three() -> dict:
    return status(
        member(0, 1, self_=True),
        member(1, 2),
        member(2, 2),
        votingMembersCount=3,
        writableVotingMembersCount=3,
        majorityVoteCount=2,
        writeMajorityCount=2,
    )


# ---------------------------------------------------------------------- verdicts


def test_healthy_set_verdict_names_primary_and_secondaries():
    v = render.verdict(healthy_three())
    assert v.healthy
    assert v.headline == "healthy: primary h0:27017, 2/2 secondaries within 1 s"
    assert v.problems == [] and v.warnings == []


def test_down_member_is_explained_with_heartbeat_message_and_age():
    s = status(
        member(0, 1, self_=True),
        member(1, 2),
        member(2, 8, health=0.0, hb_age=12, lastHeartbeatMessage="connection refused"),
    )
    v = render.verdict(s)
    assert not v.healthy
    assert v.headline == "degraded: primary h0:27017, 1/2 secondaries within 1 s"
    assert v.problems == ["h2:27017: not reachable (connection refused); last heard from 12 s ago"]
    s["members"][2]["lastHeartbeatMessage"] = (
        "ClientConnectorError: Cannot connect to host h2:27017 ssl:default [Connect call failed "
        "('10.0.0.2', 27017)]"
    )
    assert render.verdict(s).problems[0].startswith("h2:27017: not reachable (connection refused)")
    s["members"][2]["lastHeartbeatMessage"] = "TimeoutError: heartbeat to h2:27017"
    assert "(no reply in time)" in render.verdict(s).problems[0]


def test_lagging_secondary_is_reported_with_its_lag():
    s = status(
        member(0, 1, self_=True, secs=T0 + 35), member(1, 2, secs=T0 + 35), member(2, 2, secs=T0)
    )
    v = render.verdict(s, lag_ok_s=10)
    assert v.headline.startswith("degraded: primary h0:27017, 1/2 secondaries")
    assert v.problems == ["h2:27017: lagging 35 s behind the primary"]
    assert "35 s !" in render.status_table(s)


def test_small_lag_within_threshold_is_healthy_and_shown_in_headline():
    s = status(
        member(0, 1, self_=True, secs=T0 + 3), member(1, 2, secs=T0 + 3), member(2, 2, secs=T0 + 1)
    )
    v = render.verdict(s)
    assert v.healthy
    assert v.headline == "healthy: primary h0:27017, 2/2 secondaries within 2 s"


def test_no_primary_says_writes_are_refused_and_why_no_election():
    s = status(
        member(0, 2, self_=True), member(1, 8, health=0.0), member(2, 8, health=0.0), myState=2
    )
    v = render.verdict(s)
    assert v.headline == "NO PRIMARY in rs0: writes are refused; 1/3 members reachable"
    assert "only 1 of 3 voting members are up; 2 are needed to elect a primary" in v.problems
    assert sum("not reachable" in p for p in v.problems) == 2


@pytest.mark.parametrize(
    ("state", "extra", "expected"),
    [
        (3, {"infoMessage": "maintenance mode"}, "h2:27017: RECOVERING (maintenance mode)"),
        (9, {}, "h2:27017: rolling back writes that the majority never had (ROLLBACK)"),
        (
            10,
            {"configVersion": 2},
            "h2:27017: REMOVED (not in the config this member has; config version 2)",
        ),
        (6, {}, "h2:27017: UNKNOWN (no heartbeat state yet)"),
    ],
)
def test_unhealthy_states_are_explained(state, extra, expected):
    s = status(member(0, 1, self_=True), member(1, 2), member(2, state, **extra))
    assert expected in render.verdict(s).problems


def test_too_stale_member_is_told_to_resync():
    s = status(member(0, 3, self_=True), member(1, 1), member(2, 2), tooStale=True, myState=3)
    (problem,) = render.verdict(s).problems
    assert problem.startswith("h0:27017: too stale to catch up")
    assert "replctl --host h0:27017 resync" in problem


def test_initial_sync_shows_progress_in_verdict_and_a_bar():
    s = status(member(0, 1, self_=True), member(1, 2), member(2, 5))
    iss = {
        "syncSource": "h0:27017",
        "attempt": 1,
        "approxTotalDataSize": 2 * 1024 * 1024,
        "approxTotalBytesCopied": 1024 * 1024,
        "documentsCopied": 1200,
        "totalInitialSyncElapsedMillis": 3000,
        "remainingInitialSyncEstimatedMillis": 3000,
    }
    v = render.verdict(s, initial_syncs={"h2:27017": iss})
    assert "h2:27017: initial sync in progress (from h0:27017, 50% copied)" in v.problems
    text = render.render_status(s, initial_syncs={"h2:27017": iss})
    line = next(ln for ln in text.splitlines() if ln.startswith("h2:27017 initial sync"))
    assert "[###############...............]  50%" in line
    assert "1.0 MB / 2.0 MB, 1200 docs, 3.0 s elapsed, ~3.0 s left" in line


# ---------------------------------------------------------------------- topology warnings


def test_psa_set_warns_that_majority_writes_need_both_data_members():
    s = status(member(0, 1, self_=True), member(1, 2), member(2, 7))
    cfg = config("h0:27017", "h1:27017", arbiters=("h2:27017",))
    v = render.verdict(s, cfg)
    assert v.healthy
    assert v.headline == "healthy: primary h0:27017, 1/1 secondaries within 1 s, 1/1 arbiters up"
    (warning,) = v.warnings
    assert "with one data-bearing member down this set cannot confirm majority writes" in warning
    assert "2 data-bearing voting members and 1 arbiter" in warning


def test_psa_warning_also_from_status_counters_without_config():
    s = status(
        member(0, 1, self_=True),
        member(1, 2),
        member(2, 7),
        votingMembersCount=3,
        writableVotingMembersCount=2,
        majorityVoteCount=2,
        writeMajorityCount=2,
    )
    assert any("cannot confirm majority writes" in w for w in render.verdict(s).warnings)


def test_psa_with_a_data_member_down_reports_stalled_majority_writes():
    s = status(member(0, 1, self_=True), member(1, 8, health=0.0), member(2, 7))
    cfg = config("h0:27017", "h1:27017", arbiters=("h2:27017",))
    v = render.verdict(s, cfg)
    assert (
        "majority writes cannot be confirmed: 1 of 2 needed data-bearing members are "
        "PRIMARY or SECONDARY" in v.problems
    )


def test_three_data_members_have_no_topology_warning():
    cfg = config("h0:27017", "h1:27017", "h2:27017")
    assert render.verdict(healthy_three(), cfg).warnings == []


def test_single_member_and_even_voter_counts_are_noted():
    assert render.topology_warnings(render.Voting(1, 1, 0, 1, 1))[0].startswith(
        "warning: single voting member"
    )
    notes = render.topology_warnings(render.Voting(4, 4, 0, 3, 3))
    assert notes == [
        "note: 4 voting members tolerate 1 failure(s), no more than 3 would; an odd "
        "number of voters is the usual choice"
    ]


# ---------------------------------------------------------------------- table and header


def test_status_table_rows_and_columns():
    s = status(
        member(0, 1, self_=True, secs=T0 + 1),
        member(1, 2, secs=T0 + 1),
        member(2, 8, health=0.0, hb_age=4),
    )
    lines = render.status_table(s).splitlines()
    assert lines[0].split() == [
        "MEMBER",
        "STATE",
        "HEALTH",
        "OPTIME",
        "LAG",
        "PING",
        "SYNC",
        "SOURCE",
        "LAST",
        "HEARTBEAT",
    ]
    assert lines[1].split() == [
        "*h0:27017",
        "PRIMARY",
        "up",
        f"{T0 + 1}:1",
        "t1",
        "-",
        "-",
        "-",
        "(self)",
    ]
    assert lines[2].split() == [
        "h1:27017",
        "SECONDARY",
        "up",
        f"{T0 + 1}:1",
        "t1",
        "0.0",
        "s",
        "2",
        "ms",
        "h0:27017",
        "0.5",
        "s",
        "ago",
    ]
    assert lines[3].split()[:3] == ["h2:27017", "DOWN", "DOWN"]
    assert lines[3].split()[-6:] == ["-", "-", "-", "4.0", "s", "ago"]


def test_header_names_the_member_that_answered():
    text = render.status_header(healthy_three(), {"version": 7})
    assert text.startswith("set rs0  term 3  config version 7  (as seen by h0:27017, PRIMARY")


def test_last_rollback_is_mentioned():
    s = healthy_three()
    s["lastRollback"] = {
        "date": NOW,
        "documentsRolledBack": {"test.c": 3},
        "rollbackDirectory": "rollback/",
    }
    assert (
        "last rollback: Mon Nov 23 2026 14:00:00 GMT+0000 (UTC), 3 documents"
        in render.render_status(s)
    )


def test_progress_bar_and_formatters():
    assert render.progress_bar(0.5, 10) == "[#####.....]  50%"
    assert render.progress_bar(2.0, 4) == "[####] 100%"
    assert render.human_secs(0.42) == "0.4 s"
    assert render.human_secs(185) == "3 min 5 s"
    assert render.human_bytes(1536) == "1.5 KB"
    assert render.optime_text({"ts": Timestamp(0, 0), "t": -1}) == "-"


# ---------------------------------------------------------------------- reports


def test_replication_info_like_print_replication_info():
    info = {
        "configuredLogSizeMB": 200.0,
        "logSizeMB": 200.0,
        "usedMB": 0.25,
        "timeDiff": 3600,
        "timeDiffHours": 1.0,
        "tFirst": NOW - datetime.timedelta(hours=1),
        "tLast": NOW,
        "now": NOW,
    }
    assert render.replication_info_text(info).splitlines() == [
        "configured oplog size:   200 MB",
        "oplog used:              0.25 MB",
        "log length start to end: 3600 secs (1.00 hrs)",
        "oplog first event time:  Mon Nov 23 2026 13:00:00 GMT+0000 (UTC)",
        "oplog last event time:   Mon Nov 23 2026 14:00:00 GMT+0000 (UTC)",
        "now:                     Mon Nov 23 2026 14:00:00 GMT+0000 (UTC)",
    ]


def test_secondary_info_like_print_secondary_replication_info():
    info = {
        "members": [
            {
                "source": "h1:27017",
                "state": "SECONDARY",
                "syncedTo": NOW,
                "lagSecs": 2.0,
                "behindPrimary": "2 secs (0.00 hrs) behind the primary",
            },
            {
                "source": "h2:27017",
                "state": "STARTUP2",
                "syncedTo": None,
                "lagSecs": None,
                "behindPrimary": "no data",
            },
        ]
    }
    assert render.secondary_info_text(info).splitlines() == [
        "source: h1:27017",
        "    syncedTo: Mon Nov 23 2026 14:00:00 GMT+0000 (UTC)",
        "    2 secs (0.00 hrs) behind the primary",
        "source: h2:27017",
        "    STARTUP2",
    ]


# ---------------------------------------------------------------------- config edits


def test_add_bumps_version_and_picks_next_free_id():
    cfg = {
        "_id": "rs0",
        "version": 4,
        "members": [{"_id": 0, "host": "h0:27017"}, {"_id": 5, "host": "h1:27017"}],
    }
    new, notes = rsconf.with_member_added(cfg, "h9", rsconf.MemberOptions())
    assert new["version"] == 5 and notes == []
    assert new["members"][-1] == {"_id": 6, "host": "h9:27017"}
    assert cfg["version"] == 4 and len(cfg["members"]) == 2  # the input is not changed


def test_add_hidden_delayed_member_gets_priority_zero():
    cfg = {"_id": "rs0", "version": 1, "members": [{"_id": 0, "host": "h0:27017"}]}
    new, notes = rsconf.with_member_added(
        cfg, "h1:27017", rsconf.MemberOptions(hidden=True, delay_secs=3600, build_indexes=False)
    )
    assert new["members"][-1] == {
        "_id": 1,
        "host": "h1:27017",
        "priority": 0,
        "hidden": True,
        "secondaryDelaySecs": 3600,
        "buildIndexes": False,
    }
    assert notes and "priority set to 0" in notes[0]


def test_add_arbiter_and_eighth_voter():
    cfg = {"_id": "rs0", "version": 1, "members": [{"_id": i, "host": f"h{i}:1"} for i in range(7)]}
    new, notes = rsconf.with_member_added(cfg, "a:1", rsconf.MemberOptions(arbiter=True))
    assert new["members"][-1] == {
        "_id": 7,
        "host": "a:1",
        "arbiterOnly": True,
        "priority": 0,
        "votes": 0,
    }
    assert "already has 7 voting members" in notes[0]


def test_add_existing_and_remove_unknown_are_errors():
    cfg = {"_id": "rs0", "version": 1, "members": [{"_id": 0, "host": "h0:27017"}]}
    with pytest.raises(CtlError, match="already a member"):
        rsconf.with_member_added(cfg, "h0", rsconf.MemberOptions())
    with pytest.raises(CtlError, match=r"h9:27017 is not a member of rs0 \(members: h0:27017\)"):
        rsconf.with_member_removed(cfg, "h9:27017")


def test_remove_and_reconfig_versions():
    cfg = {
        "_id": "rs0",
        "version": 3,
        "term": 2,
        "members": [{"_id": 0, "host": "h0:1"}, {"_id": 1, "host": "h1:1"}],
    }
    assert rsconf.with_member_removed(cfg, "h1:1")["members"] == [{"_id": 0, "host": "h0:1"}]
    assert rsconf.with_member_removed(cfg, "h1:1")["version"] == 4
    wanted = rsconf.with_version_after({"config": {**cfg, "version": 1}}, cfg)
    assert wanted["version"] == 4 and "term" not in wanted


def test_initiate_config_and_settings():
    doc = rsconf.initiate_config(
        "rs0",
        ["a:1", "b:2"],
        ["c:3"],
        rsconf.parse_settings("heartbeatIntervalMillis=500,chainingAllowed=false"),
    )
    assert doc == {
        "_id": "rs0",
        "version": 1,
        "members": [
            {"_id": 0, "host": "a:1"},
            {"_id": 1, "host": "b:2"},
            {"_id": 2, "host": "c:3", "arbiterOnly": True},
        ],
        "settings": {"heartbeatIntervalMillis": 500, "chainingAllowed": False},
    }


# ---------------------------------------------------------------------- client and CLI


def test_host_forms():
    assert normalize_host("localhost") == "localhost:27017"
    assert normalize_host("http://127.0.0.1:28017/") == "127.0.0.1:28017"
    assert normalize_host("::1") == "[::1]:27017"
    assert parse_seeds("mongodb://a,b:28018/?replicaSet=rs0") == ["a:27017", "b:28018"]
    assert parse_seeds("a:1, b:2") == ["a:1", "b:2"]


def test_not_primary_error_names_the_primary_once():
    err = ServerError(
        "h1:27017",
        {
            "ok": 0,
            "errmsg": "not primary",
            "code": 10107,
            "codeName": "NotWritablePrimary",
            "primary": "h0:27017",
        },
    )
    assert str(err) == (
        "not primary (code 10107 NotWritablePrimary; from h1:27017); the primary is h0:27017"
    )
    err = ServerError(
        "h1:27017",
        {"ok": 0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary"},
    )
    assert str(err).endswith("no primary is known right now")


def test_extended_json_round_trip_and_bad_input():
    doc = from_json('{"ts": {"$timestamp": {"t": 5, "i": 2}}, "n": {"$numberLong": "7"}}')
    assert doc["ts"] == Timestamp(5, 2) and doc["n"] == 7
    with pytest.raises(CtlError, match="not valid"):
        from_json("{nope")


def test_global_options_are_accepted_after_the_subcommand():
    args = build_parser().parse_args(["status", "--json", "--host", "h:1", "--watch"])
    assert args.json and args.host == "h:1" and args.watch == 2.0
    args = build_parser().parse_args(["--host", "h:2", "step-down", "5"])
    assert args.host == "h:2" and args.secs == 5.0 and args.timeout is None
    args = build_parser().parse_args(["cluster", "kill", "primary", "--dir", "d"])
    assert (args.node, args.dir, args.signal) == ("primary", "d", "KILL")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["maintenance", "maybe"])
    assert exc.value.code == 2
    assert "replctl: error:" in capsys.readouterr().err
