"""Replica set config validation follows MongoDB's rules, each failure a clear 93 message."""

import pytest

from replnode.core.rsconfig import (
    InvalidConfig, check_reconfig, normalize_host, parse_config, voter_change_count,
)


def cfg(*members, **extra):
    return {"_id": "rs0", "version": 1,
            "members": [dict({"_id": i, "host": f"h{i}:27017"}, **m) for i, m in
                        enumerate(members)], **extra}


def test_defaults_and_majorities():
    c = parse_config(cfg({}, {}, {}))
    assert c.majority_vote_count == 2
    assert c.write_majority == 2
    assert c.settings.heartbeat_interval_ms == 2000
    assert c.settings.election_timeout_ms == 10_000
    assert c.settings.heartbeat_timeout_secs == 10
    assert all(m.priority == 1 and m.votes == 1 for m in c.members)


def test_arbiter_counts_for_votes_not_writes():
    c = parse_config(cfg({}, {}, {"arbiterOnly": True}))
    assert c.majority_vote_count == 2
    assert c.write_majority == 2
    assert c.members[2].priority == 0
    psa = parse_config(cfg({}, {"arbiterOnly": True}, {"arbiterOnly": True}))
    assert psa.write_majority == 1


@pytest.mark.parametrize("members, message", [
    (({}, {"_id": 0, "host": "x:1"}), "same _id"),
    (({"host": "a:1"}, {"host": "A:1"}), "same host"),
    (({"priority": 1001},), "out of range"),
    (({"priority": -1},), "out of range"),
    (({}, {"votes": 2}), "must be 0 or 1"),
    (({}, {"hidden": True}), "hidden=true"),
    (({}, {"secondaryDelaySecs": 5}), "secondaryDelaySecs"),
    (({}, {"buildIndexes": False}), "buildIndexes=false"),
    (({}, {"arbiterOnly": True, "priority": 2}), "arbiterOnly"),
    (({}, {"votes": 0}), "non-voting"),
    (({"priority": 0},), "priority > 0"),
    (({"votes": 0, "priority": 0},), "at least one voting"),
    (({}, {"bogus": 1}), "Unexpected field bogus"),
    (({"host": "nohostport:99999"},), "not a valid host"),
])
def test_invalid_configs(members, message):
    with pytest.raises(InvalidConfig) as exc:
        parse_config(cfg(*members))
    assert exc.value.code == 93
    assert message in exc.value.errmsg


def test_vote_and_member_limits():
    eight = cfg(*[{} for _ in range(8)])
    with pytest.raises(InvalidConfig, match="at most 7"):
        parse_config(eight)
    ok = cfg(*([{}] * 7 + [{"votes": 0, "priority": 0}] * 43))
    assert len(parse_config(ok).members) == 50
    too_many = cfg(*([{}] * 7 + [{"votes": 0, "priority": 0}] * 44))
    with pytest.raises(InvalidConfig, match="at most 50"):
        parse_config(too_many)


def test_hidden_delayed_priority_zero_are_valid():
    c = parse_config(cfg({}, {"priority": 0, "hidden": True, "secondaryDelaySecs": 60},
                         {"priority": 0, "buildIndexes": False}))
    assert not c.members[1].electable and c.members[1].hidden
    assert c.members[1].secondary_delay_secs == 60


def test_localhost_mix_rejected():
    doc = {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:1"},
                                     {"_id": 1, "host": "db.example:1"}]}
    with pytest.raises(InvalidConfig, match="localhost"):
        parse_config(doc)


def test_reconfig_rules():
    old = parse_config(cfg({}, {}, {}))
    two_more = parse_config({**cfg({}, {}, {}, {}, {}), "version": 2})
    with pytest.raises(InvalidConfig, match="at most 1 voting"):
        check_reconfig(old, two_more, force=False)
    check_reconfig(old, two_more, force=True)
    same_version = parse_config(cfg({}, {}, {}, {}))
    with pytest.raises(InvalidConfig, match="must be greater"):
        check_reconfig(old, same_version, force=False)
    moved = parse_config({"_id": "rs0", "version": 2, "members": [
        {"_id": 5, "host": "h0:27017"}, {"_id": 1, "host": "h1:27017"},
        {"_id": 2, "host": "h2:27017"}]})
    with pytest.raises(InvalidConfig, match="_id field"):
        check_reconfig(old, moved, force=False)
    assert voter_change_count(old, two_more) == 2


def test_is_newer_than():
    a = parse_config({**cfg({}), "version": 2, "term": 1})
    b = parse_config({**cfg({}), "version": 1, "term": 2})
    assert b.is_newer_than(a)
    forced = parse_config({**cfg({}), "version": 50000, "term": -1})
    assert forced.is_newer_than(b)


def test_normalize_host():
    assert normalize_host("LocalHost") == "localhost:27017"
    assert normalize_host("a:1") == "a:1"
    assert normalize_host("::1") == "[::1]:27017"
    assert normalize_host("[::1]:5") == "[::1]:5"


def test_round_trip_document():
    c = parse_config(cfg({}, {"priority": 0, "hidden": True, "tags": {"dc": "east"}}))
    again = parse_config(c.to_document())
    assert again == c
