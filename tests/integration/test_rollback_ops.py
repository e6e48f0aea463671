"""Real processes, signals only: rollback undoes every kind of write an isolated primary took.

Each test builds majority-committed state, isolates the primary (SIGSTOP of both
secondaries), runs a burst of w:1 writes of different kinds on it, lets the other
two elect a new primary, and resumes the old one.  After its rollback every
member must hold exactly the majority-committed data, collections and indexes,
and the old primary must have saved its versions of the touched documents under
<dbpath>/rollback/<db>.<coll>/.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from replnode.shell.persist import read_rollback_file
from tests.integration.harness import FAST_SETTINGS, ProcessCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# A longer election timeout than FAST_SETTINGS so that the isolated primary
# keeps accepting writes for about 3 s after its secondaries stop: the burst of
# w:1 writes below must finish before it steps down.
SETTINGS = {**FAST_SETTINGS, "electionTimeoutMillis": 3000}
SECONDARY_OK = {"mode": "secondaryPreferred"}


def _ok(reply: dict[str, Any], what: str) -> dict[str, Any]:
    assert reply.get("ok") == 1, f"{what} failed: {reply}"
    assert "writeErrors" not in reply, f"{what}: {reply}"
    assert "writeConcernError" not in reply, f"{what}: {reply}"
    return reply


def _isolated_write(
    c: ProcessCluster, i: int, db: str, cmd: dict[str, Any], what: str
) -> dict[str, Any]:
    """A w:1 write on the isolated primary; it must not have stepped down yet."""
    reply = c.command(i, {**cmd, "writeConcern": {"w": 1}}, db=db)
    if reply.get("code") == 10107:
        pytest.fail(
            f"{what}: the isolated primary already stepped down (NotWritablePrimary); "
            f"the burst of writes was too slow: {reply}"
        )
    return _ok(reply, what)


def _start(c: ProcessCluster) -> int:
    c.start()
    c.initiate(settings=dict(SETTINGS))
    old = c.wait_for_primary(30)
    c.wait_for_states({i: ("PRIMARY" if i == old else "SECONDARY") for i in range(3)}, 30)
    return old


def _roll_back(c: ProcessCluster, old: int, burst: Any) -> tuple[int, bool]:
    """Isolate `old`, run `burst()` on it, fail over, and wait for its rollback.

    Returns (new primary, whether the probe write was rolled back too).
    """
    a, b = [i for i in range(3) if i != old]
    c.pause(a)
    c.pause(b)
    # The paused secondaries each left a fetch long-poll open; the old primary
    # answers it with the next entry and the kernel buffers that reply, so a
    # resumed secondary may apply it.  A probe write absorbs those replies.
    assert c.insert(old, [{"_id": "probe"}], w=1)["ok"] == 1
    time.sleep(0.3)
    burst()
    c.pause(old)
    c.resume(a)
    c.resume(b)
    new = c.wait_for_primary(30, exclude=(old,))
    _ok(c.insert(new, [{"_id": "after-failover"}], w="majority"), "majority write on new")
    c.resume(old)

    def back_to_secondary() -> bool:
        st = c.try_status(old)
        if st is None or st.get("ok") != 1:
            return False
        me = [m for m in st["members"] if m.get("self")][0]
        return me["stateStr"] == "SECONDARY" and bool(st.get("lastRollback"))

    c.wait_for(back_to_secondary, 40, "the old primary to roll back and become SECONDARY")
    probe_lost = not c.find_all(new, filter={"_id": "probe"})
    return new, probe_lost


def _wait_same_data(c: ProcessCluster, dbs: tuple[str, ...]) -> None:
    def same() -> bool:
        for db in dbs:
            hashes = set()
            for i in range(3):
                reply = c.command(i, {"dbHash": 1, "$readPreference": SECONDARY_OK}, db=db)
                if reply.get("ok") != 1:
                    return False
                hashes.add(reply["md5"])
            if len(hashes) != 1:
                return False
        return True

    c.wait_for(same, 30, f"identical dbHash of {dbs} on every member")


def _docs(c: ProcessCluster, i: int, db: str, coll: str) -> dict[Any, dict[str, Any]]:
    return {d["_id"]: d for d in c.find_all(i, db=db, coll=coll)}


def _docs_rc(
    c: ProcessCluster, i: int, db: str, coll: str, read_concern: str
) -> dict[Any, dict[str, Any]]:
    return {d["_id"]: d for d in c.find_all(i, db=db, coll=coll, read_concern=read_concern)}


def _index_names(c: ProcessCluster, i: int, db: str, coll: str) -> set[str]:
    reply = c.command(i, {"listIndexes": coll, "$readPreference": SECONDARY_OK}, db=db)
    assert reply.get("ok") == 1, f"listIndexes {db}.{coll} on member {i}: {reply}"
    assert reply["cursor"]["id"] == 0
    return {spec["name"] for spec in reply["cursor"]["firstBatch"]}


def _collection_names(c: ProcessCluster, i: int, db: str) -> set[str]:
    reply = c.command(
        i, {"listCollections": 1, "nameOnly": True, "$readPreference": SECONDARY_OK}, db=db
    )
    assert reply.get("ok") == 1, f"listCollections {db} on member {i}: {reply}"
    assert reply["cursor"]["id"] == 0
    return {info["name"] for info in reply["cursor"]["firstBatch"]}


def _collection_options(c: ProcessCluster, i: int, db: str, coll: str) -> dict[str, Any]:
    reply = c.command(
        i, {"listCollections": 1, "filter": {"name": coll}, "$readPreference": SECONDARY_OK}, db=db
    )
    assert reply.get("ok") == 1, f"listCollections {db} on member {i}: {reply}"
    infos = reply["cursor"]["firstBatch"]
    assert len(infos) == 1, f"member {i}: {db}.{coll}: {infos}"
    return dict(infos[0]["options"])


def _rollback_files(c: ProcessCluster, i: int, ns: str) -> list[dict[str, Any]]:
    folder = c.members[i].dbpath / "rollback" / ns
    return [d for f in sorted(folder.glob("removed.*.json")) for d in read_rollback_file(str(f))]


def _check_report(c: ProcessCluster, old: int, expected: dict[str, int], rbid_before: int) -> None:
    report = c.status(old)["lastRollback"]
    assert report["documentsRolledBack"] == expected, report
    assert report["rollbackId"] > rbid_before, report
    assert report["rollbackDirectory"] == "rollback/", report
    others = {m.host for m in c.members if m.index != old}
    assert report["syncSource"] in others, report
    rbid = c.command(old, {"replSetGetRBID": 1})
    assert rbid.get("ok") == 1 and rbid["rbid"] == report["rollbackId"], (rbid, report)
    # Nothing is rolled back anywhere else: the survivors never diverged.
    for i in range(3):
        if i != old:
            assert not c.status(i).get("lastRollback"), f"member {i} rolled back too"


def test_rollback_restores_update_delete_insert_index_build_and_drop(cluster_factory):
    c: ProcessCluster = cluster_factory(n=3)
    old = _start(c)

    base = [{"_id": "u1", "x": 1}, {"_id": "d1", "x": 1}, {"_id": "k1", "x": 1, "y": 5}]
    base += [{"_id": f"base{n}", "x": n} for n in range(10)]
    _ok(c.insert(old, base, w="majority"), "base insert")
    _ok(
        c.command(
            old,
            {
                "createIndexes": "c",
                "indexes": [{"key": {"x": 1}, "name": "x_1"}],
                "writeConcern": {"w": "majority"},
            },
            db="test",
        ),
        "createIndexes x_1",
    )
    dropme = [{"_id": f"dm{n}", "n": n} for n in range(5)]
    _ok(c.insert(old, dropme, coll="dropme", w="majority"), "dropme insert")
    _ok(
        c.command(
            old,
            {
                "createIndexes": "dropme",
                "indexes": [{"key": {"n": 1}, "name": "n_1", "unique": True}],
                "writeConcern": {"w": "majority"},
            },
            db="test",
        ),
        "createIndexes n_1",
    )
    assert _index_names(c, old, "test", "c") == {"_id_", "x_1"}
    rbid_before = c.command(old, {"replSetGetRBID": 1})["rbid"]

    def burst() -> None:
        # Back to back: the isolated primary steps down an election timeout after
        # it last heard from its secondaries.
        _isolated_write(
            c,
            old,
            "test",
            {"update": "c", "updates": [{"q": {"_id": "u1"}, "u": {"$set": {"x": 99}}}]},
            "update u1",
        )
        _isolated_write(
            c,
            old,
            "test",
            {"delete": "c", "deletes": [{"q": {"_id": "d1"}, "limit": 1}]},
            "delete d1",
        )
        _isolated_write(
            c, old, "test", {"insert": "c", "documents": [{"_id": "i1", "x": 7}]}, "insert i1"
        )
        _isolated_write(
            c,
            old,
            "test",
            {"createIndexes": "c", "indexes": [{"key": {"y": 1}, "name": "y_1"}]},
            "createIndexes y_1",
        )
        _isolated_write(c, old, "test", {"drop": "dropme"}, "drop dropme")
        # What the old primary holds just before it is cut off.
        assert _docs(c, old, "test", "c")["u1"]["x"] == 99
        assert "d1" not in _docs(c, old, "test", "c")
        assert _index_names(c, old, "test", "c") == {"_id_", "x_1", "y_1"}
        assert "dropme" not in _collection_names(c, old, "test")

    new, probe_lost = _roll_back(c, old, burst)
    _wait_same_data(c, ("test",))

    expected_c = {d["_id"]: d for d in base} | {"after-failover": {"_id": "after-failover"}}
    if not probe_lost:
        expected_c["probe"] = {"_id": "probe"}
    for i in range(3):
        docs = _docs(c, i, "test", "c")
        assert docs == expected_c, f"member {i}: test.c is {docs}"
        assert docs["u1"] == {"_id": "u1", "x": 1}, f"member {i}: the update was not undone"
        assert docs["d1"] == {"_id": "d1", "x": 1}, f"member {i}: the delete was not undone"
        assert "i1" not in docs, f"member {i}: the insert was not undone"
        indexes = _index_names(c, i, "test", "c")
        assert indexes == {"_id_", "x_1"}, f"member {i}: test.c has indexes {indexes}"
        assert "dropme" in _collection_names(c, i, "test"), f"member {i}: dropme is gone"
        assert _docs(c, i, "test", "dropme") == {d["_id"]: d for d in dropme}, f"member {i}"
        assert _index_names(c, i, "test", "dropme") == {"_id_", "n_1"}, f"member {i}"
        # The rolled-back index is really gone, not just hidden from listIndexes:
        # a query that would use it is planned without it.
        explain = c.command(
            i,
            {"explain": {"find": "c", "filter": {"y": 5}}, "$readPreference": SECONDARY_OK},
            db="test",
        )
        assert explain.get("ok") == 1, explain
        assert "y_1" not in repr(explain.get("queryPlanner", explain)), explain
        # The restored unique index on the restored collection is enforced.
        assert c.find_all(i, coll="dropme", filter={"n": 3}) == [{"_id": "dm3", "n": 3}]
    dup = c.insert(new, [{"_id": "dm-dup", "n": 3}], coll="dropme", w="majority")
    assert dup.get("writeErrors") and dup["writeErrors"][0]["code"] == 11000, dup

    # Our versions of the inserted and updated documents were saved; a deleted
    # document has no version of ours to save, and a dropped collection's
    # documents are restored from the sync source.
    saved = {d["_id"]: d for d in _rollback_files(c, old, "test.c")}
    expected_saved = {"u1": {"_id": "u1", "x": 99}, "i1": {"_id": "i1", "x": 7}}
    if probe_lost:
        expected_saved["probe"] = {"_id": "probe"}
    assert saved == expected_saved
    assert not (c.members[old].dbpath / "rollback" / "test.dropme").exists()
    for i in range(3):
        if i != old:
            assert not (c.members[i].dbpath / "rollback").exists(), f"member {i}"
    _check_report(c, old, {"test.c": len(expected_saved)}, rbid_before)

    # Majority reads see the restored data too (the snapshots were reset by the rollback).
    for i in range(3):
        c.wait_for(
            lambda i=i: _docs_rc(c, i, "test", "c", "majority") == expected_c,
            20,
            f"member {i} to serve the restored test.c to majority reads",
        )

    # The rollback's store changes are journaled: after a kill -9 and restart the
    # old primary recovers the restored data and indexes, not its own history.
    c.restart(old)
    c.wait_for_state(old, "SECONDARY", 30)
    _wait_same_data(c, ("test",))
    assert _docs(c, old, "test", "c") == expected_c
    assert _index_names(c, old, "test", "c") == {"_id_", "x_1"}
    assert _docs(c, old, "test", "dropme") == {d["_id"]: d for d in dropme}
    assert _index_names(c, old, "test", "dropme") == {"_id_", "n_1"}


def test_rollback_restores_multi_document_writes_create_drop_indexes_and_drop_database(
    cluster_factory,
):
    c: ProcessCluster = cluster_factory(n=3)
    old = _start(c)

    plain = [{"_id": f"p{n}", "g": n % 2, "v": n} for n in range(10)]
    _ok(c.insert(old, plain, coll="plain", w="majority"), "plain insert")
    _ok(
        c.insert(old, [{"_id": f"k{n}", "k": n} for n in range(3)], coll="idx", w="majority"),
        "idx insert",
    )
    _ok(
        c.command(
            old,
            {
                "createIndexes": "idx",
                "indexes": [{"key": {"k": 1}, "name": "k_1"}, {"key": {"k": -1}, "name": "k_-1"}],
                "writeConcern": {"w": "majority"},
            },
            db="test",
        ),
        "createIndexes idx",
    )
    other_o1 = [{"_id": n, "s": f"s{n}"} for n in range(5)]
    other_o2 = [{"_id": "only"}]
    _ok(c.insert(old, other_o1, db="other", coll="o1", w="majority"), "other.o1 insert")
    _ok(
        c.command(
            old,
            {
                "createIndexes": "o1",
                "indexes": [{"key": {"s": 1}, "name": "s_1"}],
                "writeConcern": {"w": "majority"},
            },
            db="other",
        ),
        "createIndexes s_1",
    )
    _ok(c.insert(old, other_o2, db="other", coll="o2", w="majority"), "other.o2 insert")
    cap_options = {"capped": True, "size": 1 << 20, "max": 1000}
    _ok(
        c.command(
            old, {"create": "cap", **cap_options, "writeConcern": {"w": "majority"}}, db="other"
        ),
        "create capped",
    )
    _ok(
        c.insert(old, [{"_id": n} for n in range(5)], db="other", coll="cap", w="majority"),
        "other.cap insert",
    )
    rbid_before = c.command(old, {"replSetGetRBID": 1})["rbid"]

    def burst() -> None:
        r = _isolated_write(
            c,
            old,
            "test",
            {
                "update": "plain",
                "updates": [
                    {"q": {"g": 0}, "u": {"$inc": {"v": 100}, "$set": {"new": True}}, "multi": True}
                ],
            },
            "multi-update",
        )
        assert r["nModified"] == 5, r
        r = _isolated_write(
            c,
            old,
            "test",
            {"delete": "plain", "deletes": [{"q": {"g": 1}, "limit": 0}]},
            "multi-delete",
        )
        assert r["n"] == 5, r
        _isolated_write(
            c,
            old,
            "test",
            {
                "findAndModify": "plain",
                "query": {"_id": "fam"},
                "update": {"$set": {"v": -1}},
                "upsert": True,
            },
            "findAndModify upsert",
        )
        _isolated_write(
            c,
            old,
            "test",
            {"findAndModify": "plain", "query": {"_id": "p0"}, "update": {"$unset": {"g": ""}}},
            "findAndModify",
        )
        _isolated_write(c, old, "test", {"create": "created"}, "create")
        _isolated_write(
            c,
            old,
            "test",
            {"insert": "created", "documents": [{"_id": "new"}]},
            "insert into created",
        )
        _isolated_write(c, old, "test", {"dropIndexes": "idx", "index": "k_1"}, "dropIndexes")
        _isolated_write(c, old, "other", {"dropDatabase": 1}, "dropDatabase")
        assert "created" in _collection_names(c, old, "test")
        assert _collection_names(c, old, "other") == set()

    new, probe_lost = _roll_back(c, old, burst)
    _wait_same_data(c, ("test", "other"))

    expected_plain = {d["_id"]: d for d in plain}
    for i in range(3):
        docs = _docs(c, i, "test", "plain")
        assert docs == expected_plain, f"member {i}: test.plain is {docs}"
        names = _collection_names(c, i, "test")
        assert "created" not in names, f"member {i}: created collection survived: {names}"
        assert {"plain", "idx", "c"} <= names, f"member {i}: {names}"
        indexes = _index_names(c, i, "test", "idx")
        assert indexes == {"_id_", "k_1", "k_-1"}, f"member {i}: test.idx has {indexes}"
        assert _collection_names(c, i, "other") == {"o1", "o2", "cap"}, f"member {i}"
        assert _docs(c, i, "other", "o1") == {d["_id"]: d for d in other_o1}, f"member {i}"
        assert _docs(c, i, "other", "o2") == {d["_id"]: d for d in other_o2}, f"member {i}"
        assert _index_names(c, i, "other", "o1") == {"_id_", "s_1"}, f"member {i}"
        # The capped collection comes back with its options, its documents in order.
        assert _collection_options(c, i, "other", "cap") == cap_options, f"member {i}"
        assert [d["_id"] for d in c.find_all(i, db="other", coll="cap")] == [0, 1, 2, 3, 4]
    # The new primary can keep using what came back, and every member follows.
    _ok(
        c.insert(new, [{"_id": 99, "s": "s99"}], db="other", coll="o1", w="majority"),
        "insert into restored other.o1",
    )
    _ok(
        c.insert(new, [{"_id": 5}], db="other", coll="cap", w="majority"),
        "insert into restored other.cap",
    )
    _wait_same_data(c, ("other",))
    for i in range(3):
        assert [d["_id"] for d in c.find_all(i, db="other", coll="cap")] == list(range(6))

    saved = {d["_id"]: d for d in _rollback_files(c, old, "test.plain")}
    expected_saved = {
        f"p{n}": {"_id": f"p{n}", "g": 0, "v": n + 100, "new": True} for n in range(2, 10, 2)
    }
    expected_saved["p0"] = {"_id": "p0", "v": 100, "new": True}
    expected_saved["fam"] = {"_id": "fam", "v": -1}
    assert saved == expected_saved
    # The document inserted into the collection the rollback removed is saved too.
    assert _rollback_files(c, old, "test.created") == [{"_id": "new"}]
    expected_report = {"test.plain": len(expected_saved), "test.created": 1}
    if probe_lost:
        expected_report["test.c"] = 1
        assert [d["_id"] for d in _rollback_files(c, old, "test.c")] == ["probe"]
    _check_report(c, old, expected_report, rbid_before)
