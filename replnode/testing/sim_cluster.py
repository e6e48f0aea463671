"""Many `Node`s in one process, joined by a simulated network and clock.

Owns the simulated members (each a real `Node` over a real in-memory store and
oplog), the routing of `Send`/`Reply` actions through `SimNetwork`, long-poll
fetches parked until news, crashes and restarts (persisted term, vote and
config survive; data survives only with `durable_data`), simulated clients,
and the record of what clients were told. `invariants.Checker` watches every
step. One seed gives one exact run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replnode.core.actions import (
    CancelRpc, ClientReply, Persist, PersistedState, Reply, Send, WriteRollbackFiles,
)
from replnode.core.events import (
    ClientCommand, ClientWrite, Event, JournalFlushed, OpSink, PeerFailed, PeerReply,
    PeerRequestIn, Tick, WriteConcern,
)
from replnode.core.messages import FetchRequest, FetchResponse, VoteRequest, VoteResponse
from replnode.core.node import Node, NodeSettings, WriteConcernTimeout
from replnode.domain import MemberState, OpTime
from replnode.storage import apply as storage_apply
from replnode.storage import journal_format as jf
from replnode.storage.oplog import Oplog
from replnode.storage.store import Store
from replnode.testing.sim_network import EventQueue, LinkFaults, SimClock, SimNetwork

SIM_EPOCH_MS = 1_700_000_000_000
NS = "test.c"


class _Resolver:
    def __init__(self, host: str) -> None:
        self.host = host

    def is_self(self, host: str) -> bool:
        return host == self.host


@dataclass
class SimMember:
    host: str
    node: Node | None
    persisted: PersistedState | None = None
    store: Store | None = None
    oplog: Oplog | None = None
    rollback_files: list[WriteRollbackFiles] = field(default_factory=list)
    incarnation: int = 0
    # The journal model (durable_data): what reached "disk" and what the OS still holds.
    journal_flushed: list[tuple[str, Any]] = field(default_factory=list)
    journal_unflushed: list[tuple[str, Any]] = field(default_factory=list)
    flush_scheduled: bool = False
    # handle -> (requester host, rpc_id, (requester incarnation, sent_ms, timeout_ms), request)
    pending: dict[int, tuple[str, int, tuple[int, int, int], Any]] = field(default_factory=dict)
    parked: list[tuple[int, FetchRequest, int]] = field(default_factory=list)  # handle, req, deadline


@dataclass
class ClientOp:
    """A client write and what the client was told."""

    op_id: int
    host: str
    doc_id: int
    concern: WriteConcern
    sent_ms: int
    outcome: str = "pending"  # ok | failed | timeout | pending
    optime: OpTime | None = None
    done_ms: int = -1


class SimCluster:
    """A seeded simulation of an n-member replica set."""

    def __init__(self, seed: int, members: int = 3, *, priorities: list[float] | None = None,
                 arbiters: tuple[int, ...] = (), faults: LinkFaults | None = None,
                 heartbeat_interval_ms: int = 100, election_timeout_ms: int = 500,
                 tick_ms: int = 20, durable_data: bool = False, oplog_bytes: int = 64 << 20,
                 log_capture: list[str] | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = SimClock(0)
        self.net = SimNetwork(random.Random(seed * 7919 + 1), faults)
        self.queue = EventQueue()
        self.tick_ms = tick_ms
        self.durable_data = durable_data
        self.oplog_bytes = oplog_bytes
        self.hosts = [f"n{i}:27017" for i in range(members)]
        self.members: dict[str, SimMember] = {}
        self.ops: list[ClientOp] = []
        self._op_seq = 0
        self._next_handle = 1
        self._client_requests: dict[tuple[str, int], ClientOp] = {}
        self._command_replies: dict[tuple[str, int], list[Any]] = {}
        self._log_capture = log_capture
        self.steps = 0
        self.observers: list[Callable[[SimCluster, str], None]] = []
        # Called as hook(sim, dst, src, request) before a request is delivered; returning a
        # positive number of ms holds the request that long (tests force interleavings).
        self.request_hooks: list[Callable[[SimCluster, str, str, Any], int | None]] = []
        # vote bookkeeping for invariants: term -> candidate -> voters
        self.votes: dict[int, dict[int, set[int]]] = {}
        self.config_doc = {
            "_id": "rs0", "version": 1,
            "members": [
                {"_id": i, "host": h,
                 "priority": (0 if i in arbiters else
                              (priorities[i] if priorities else 1)),
                 **({"arbiterOnly": True} if i in arbiters else {})}
                for i, h in enumerate(self.hosts)
            ],
            "settings": {"heartbeatIntervalMillis": heartbeat_interval_ms,
                         "electionTimeoutMillis": election_timeout_ms,
                         "heartbeatTimeoutSecs": 2},
        }
        for host in self.hosts:
            self.members[host] = SimMember(host=host, node=None)
            self._boot(host)
        self._initiated = False

    # ------------------------------------------------------------------ members

    def _logger(self, host: str) -> logging.Logger:
        logger = logging.getLogger(f"replnode.sim.{self.seed}.{host}")
        logger.propagate = False
        logger.handlers.clear()
        if self._log_capture is not None:
            capture = self._log_capture
            clock = self.clock

            class _H(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    capture.append(f"{clock.now_ms:>7} {record.getMessage()}")

            logger.addHandler(_H())
            logger.setLevel(logging.INFO)
        else:
            logger.setLevel(logging.CRITICAL)
        return logger

    def _boot(self, host: str) -> None:
        m = self.members[host]
        m.store = Store()
        m.oplog = Oplog(self.oplog_bytes)
        if self.durable_data:
            _recover(m.journal_flushed, m.store, m.oplog)
        m.incarnation += 1
        m.pending.clear()
        m.parked.clear()
        settings = NodeSettings(set_name="rs0", default_host=host, periodic_noop_interval_ms=0,
                                journal_enabled=self.durable_data)
        m.node = Node(settings, rng=random.Random(self.rng.randrange(1 << 30)), store=m.store,
                      oplog=m.oplog, resolver=_Resolver(host), logger=self._logger(host),
                      persisted=m.persisted, now_ms=self.clock.now_ms,
                      wall_offset_ms=SIM_EPOCH_MS)
        self.queue.push(self.clock.now_ms + self.rng.randint(1, self.tick_ms), "tick",
                        (host, m.incarnation))

    def node(self, host: str) -> Node:
        n = self.members[host].node
        assert n is not None, f"{host} is down"
        return n

    def up(self, host: str) -> bool:
        return self.members[host].node is not None

    def crash(self, host: str) -> None:
        """Kill a member: its memory is gone; persisted state (and durable data) stays."""
        m = self.members[host]
        if m.node is None:
            return
        m.node = None
        # The requests it was serving (parked long-polls too) see their connections reset.
        for src, rpc_id, (inc, _, _), _ in m.pending.values():
            self.queue.push(self.clock.now_ms + self.net.delay(), "fail",
                            (src, inc, rpc_id, host, "connection reset"))
        m.pending.clear()
        m.parked.clear()
        for key, op in list(self._client_requests.items()):
            if key[0] == host:
                op.outcome = "unknown"
                op.done_ms = self.clock.now_ms
                del self._client_requests[key]
        # Power loss: what was fsynced survives, plus some prefix of what the OS held.
        keep = self.rng.randint(0, len(m.journal_unflushed)) if m.journal_unflushed else 0
        m.journal_flushed.extend(m.journal_unflushed[:keep])
        m.journal_unflushed = []
        m.flush_scheduled = False
        m.store = None
        m.oplog = None

    def restart(self, host: str) -> None:
        if self.members[host].node is None:
            self._boot(host)

    # ------------------------------------------------------------------ driving

    def _step(self, host: str, event: Event) -> None:
        m = self.members[host]
        if m.node is None:
            return
        actions = m.node.step(event, self.clock.now_ms)
        self.steps += 1
        self._journal(host)
        self._execute(host, actions)
        self._serve_parked(host)
        if m.node is not None and m.node.apply_backlog:
            self.queue.push(self.clock.now_ms + 1, "tick_once", (host, m.incarnation))
        for obs in self.observers:
            obs(self, host)

    def _execute(self, host: str, actions: list[Any]) -> None:
        m = self.members[host]
        for action in actions:
            match action:
                case Persist(state=state):
                    m.persisted = state
                case Send():
                    self._send(host, action)
                case Reply(handle=handle, response=response):
                    self._reply(host, handle, response)
                case ClientReply():
                    self._client_reply(host, action)
                case WriteRollbackFiles():
                    m.rollback_files.append(action)
                case CancelRpc():
                    pass

    def _send(self, src: str, action: Send) -> None:
        inc = self.members[src].incarnation
        dst = action.target
        if dst not in self.members or not self.net.can_send(src, dst) or self.net.lost():
            self.queue.push(self.clock.now_ms + action.timeout_ms, "fail",
                            (src, inc, action.rpc_id, dst, "timed out"))
            return
        if self.members[dst].node is None:
            self.queue.push(self.clock.now_ms + self.net.delay(), "fail",
                            (src, inc, action.rpc_id, dst, "connection refused"))
            return
        at = self.clock.now_ms + self.net.delay()
        self.queue.push(at, "request", (dst, src, inc, action.rpc_id, action.request,
                                        self.clock.now_ms, action.timeout_ms))
        if self.net.duplicated() and not isinstance(action.request, VoteRequest):
            self.queue.push(at + self.net.delay(), "request",
                            (dst, src, inc, action.rpc_id, action.request, self.clock.now_ms,
                             action.timeout_ms))

    def _deliver_request(self, payload: Any, hooked: bool = False) -> None:
        dst, src, inc, rpc_id, request, sent_ms, timeout_ms = payload
        if not hooked:
            hold = max((hook(self, dst, src, request) or 0 for hook in self.request_hooks),
                       default=0)
            if hold > 0:
                self.queue.push(self.clock.now_ms + hold, "held_request", payload)
                return
        m = self.members[dst]
        if m.node is None:
            self.queue.push(self.clock.now_ms + 1, "fail", (src, inc, rpc_id, dst,
                                                            "connection reset"))
            return
        handle = self._next_handle
        self._next_handle += 1
        m.pending[handle] = (src, rpc_id, (inc, sent_ms, timeout_ms), request)
        self._step(dst, PeerRequestIn(handle, request))

    def _reply(self, host: str, handle: int, response: Any) -> None:
        m = self.members[host]
        entry = m.pending.get(handle)
        if entry is None:
            return
        src, rpc_id, meta, request = entry
        inc, sent_ms, timeout_ms = meta
        if isinstance(response, FetchResponse) and response.ok and not response.entries and \
                isinstance(request, FetchRequest) and request.await_ms > 0:
            deadline = min(sent_ms + request.await_ms, sent_ms + timeout_ms - 1)
            if self.clock.now_ms < deadline:
                m.parked.append((handle, request, deadline))
                self.queue.push(deadline, "unpark", (host, m.incarnation, handle))
                return
        del m.pending[handle]
        self._route_reply(host, src, inc, rpc_id, response, sent_ms, timeout_ms)
        if isinstance(response, VoteResponse) and response.granted and \
                isinstance(request, VoteRequest) and not request.dry_run:
            self.votes.setdefault(request.term, {}).setdefault(
                request.candidate_id, set()).add(response.voter_id)

    def _route_reply(self, host: str, src: str, inc: int, rpc_id: int, response: Any,
                     sent_ms: int, timeout_ms: int) -> None:
        if not self.net.can_send(host, src) or self.net.lost():
            self.queue.push(max(self.clock.now_ms, sent_ms + timeout_ms), "fail",
                            (src, inc, rpc_id, host, "timed out"))
            return
        at = self.clock.now_ms + self.net.delay()
        if at - sent_ms > timeout_ms:
            self.queue.push(sent_ms + timeout_ms, "fail", (src, inc, rpc_id, host, "timed out"))
            return
        self.queue.push(at, "reply", (src, inc, rpc_id, host, response, at - sent_ms))

    def _serve_parked(self, host: str) -> None:
        m = self.members[host]
        if not m.parked or m.node is None:
            return
        still = []
        for handle, req, deadline in m.parked:
            if m.node.fetch_has_news(req) or self.clock.now_ms >= deadline:
                self._answer_parked(host, handle, req)
            else:
                still.append((handle, req, deadline))
        m.parked = still

    def _answer_parked(self, host: str, handle: int, req: FetchRequest) -> None:
        m = self.members[host]
        entry = m.pending.pop(handle, None)
        if entry is None or m.node is None:
            return
        src, rpc_id, meta, _ = entry
        inc, sent_ms, timeout_ms = meta
        actions = m.node.step(PeerRequestIn(handle, req), self.clock.now_ms)
        self._journal(host)
        for action in actions:
            if isinstance(action, Reply) and action.handle == handle:
                self._route_reply(host, src, inc, rpc_id, action.response, sent_ms, timeout_ms)
            else:
                self._execute(host, [action])

    def _journal(self, host: str) -> None:
        """Collect the step's journal items; schedule a group-commit flush."""
        m = self.members[host]
        if m.node is None or not self.durable_data:
            return
        items = m.node.take_journal()
        if items:
            m.journal_unflushed.extend(items)
        if m.journal_unflushed and not m.flush_scheduled:
            delay = self.rng.randint(1, 30) if m.node.durability_wanted() else 100
            m.flush_scheduled = True
            self.queue.push(self.clock.now_ms + delay, "flush", (host, m.incarnation))

    def _flush(self, host: str, inc: int) -> None:
        m = self.members[host]
        if m.node is None or m.incarnation != inc:
            return
        m.flush_scheduled = False
        m.journal_flushed.extend(m.journal_unflushed)
        m.journal_unflushed = []
        last = _journal_last_optime(m.journal_flushed)
        if last is not None:
            self._step(host, JournalFlushed(last))

    def _client_reply(self, host: str, action: ClientReply) -> None:
        key = (host, action.request_id)
        op = self._client_requests.pop(key, None)
        if op is None:
            self._command_replies.setdefault(key, []).append(action)
            return
        op.done_ms = self.clock.now_ms
        if action.error is None:
            op.outcome = "ok"
        elif isinstance(action.error, WriteConcernTimeout):
            op.outcome = "timeout"
        else:
            op.outcome = "failed"
        if isinstance(action.result, dict) and "optime" in action.result:
            op.optime = action.result["optime"]

    def run_until(self, t_ms: int) -> None:
        """Process events until simulated time `t_ms`."""
        while True:
            nxt = self.queue.peek_time()
            if nxt is None or nxt > t_ms:
                break
            ev = self.queue.pop()
            self.clock.advance_to(ev.at_ms)
            self._dispatch(ev.kind, ev.payload)
        self.clock.advance_to(t_ms)

    def run_for(self, ms: int) -> None:
        self.run_until(self.clock.now_ms + ms)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "tick":
            host, inc = payload
            m = self.members[host]
            if m.node is None or m.incarnation != inc:
                return
            self._step(host, Tick())
            self.queue.push(self.clock.now_ms + self.tick_ms, "tick", (host, inc))
        elif kind == "tick_once":
            host, inc = payload
            if self.members[host].node is not None and self.members[host].incarnation == inc:
                self._step(host, Tick())
        elif kind == "request":
            self._deliver_request(payload)
        elif kind == "held_request":
            self._deliver_request(payload, hooked=True)
        elif kind == "reply":
            src, inc, rpc_id, target, response, rtt = payload
            if self.members[src].incarnation == inc:
                self._step(src, PeerReply(rpc_id, target, response, rtt))
        elif kind == "fail":
            src, inc, rpc_id, target, reason = payload
            if self.members[src].incarnation == inc:
                self._step(src, PeerFailed(rpc_id, target, reason, 0))
        elif kind == "unpark":
            host, inc, handle = payload
            m = self.members[host]
            if m.incarnation != inc:
                return
            for h, req, _ in list(m.parked):
                if h == handle:
                    m.parked = [p for p in m.parked if p[0] != handle]
                    self._answer_parked(host, handle, req)
        elif kind == "flush":
            self._flush(*payload)
        elif kind == "client":
            host, event = payload
            self._step(host, event)

    # ------------------------------------------------------------------ clients

    def command(self, host: str, name: str, args: dict[str, Any] | None = None,
                wait_ms: int = 2_000) -> Any:
        """Run a replication command and return its ClientReply (or None if none came)."""
        self._op_seq += 1
        rid = self._op_seq
        self._step(host, ClientCommand(rid, name, args or {}))
        deadline = self.clock.now_ms + wait_ms
        while (host, rid) not in self._command_replies and self.clock.now_ms < deadline:
            self.run_for(self.tick_ms)
        replies = self._command_replies.pop((host, rid), [])
        return replies[0] if replies else None

    def initiate(self, within_ms: int = 60_000) -> Any:
        """replSetInitiate on the first member, retried (messages may be lost)."""
        reply = None
        deadline = self.clock.now_ms + within_ms
        while self.clock.now_ms < deadline:
            reply = self.command(self.hosts[0], "replSetInitiate", {"config": self.config_doc})
            if reply is not None and reply.error is None:
                break
            if reply is not None and getattr(reply.error, "code_name", "") == "AlreadyInitialized":
                break
            self.run_for(200)
        self._initiated = True
        return reply

    def write(self, host: str, doc_id: int, concern: WriteConcern | None = None) -> ClientOp:
        """Insert {_id: doc_id} through `host`; the outcome is filled in as replies arrive."""
        self._op_seq += 1
        concern = concern or WriteConcern(w="majority", wtimeout_ms=3_000)
        op = ClientOp(self._op_seq, host, doc_id, concern, self.clock.now_ms)
        self.ops.append(op)
        return self._submit(op, [{"op": "i", "ns": NS, "o": {"_id": doc_id, "v": doc_id}}])

    def write_ops(self, host: str, entries: list[dict[str, Any]],
                  concern: WriteConcern | None = None) -> ClientOp:
        """Run oplog-shaped operations (any op, ns, o, o2) as one write through `host`."""
        self._op_seq += 1
        # Not in self.ops: the invariants there are about the single-document inserts.
        op = ClientOp(self._op_seq, host, -1, concern or WriteConcern(w=1), self.clock.now_ms)
        return self._submit(op, entries)

    def _submit(self, op: ClientOp, entries: list[dict[str, Any]]) -> ClientOp:
        """Hand `entries` to op.host as one client write; the reply settles op's outcome."""
        m = self.members[op.host]
        if m.node is None:
            op.outcome = "failed"
            return op
        self._client_requests[(op.host, op.op_id)] = op

        def do_ops(sink: OpSink) -> dict[str, Any]:
            for e in entries:
                storage_apply.apply_entry(m.node.store, e)  # type: ignore[union-attr]
                sink.log(e["op"], e["ns"], e["o"], e.get("o2"))
            return {"ok": 1.0, "n": len(entries), "optime": m.node.applied}  # type: ignore[union-attr]

        self._step(op.host, ClientWrite(op.op_id, do_ops, op.concern))
        return op

    # ------------------------------------------------------------------ queries

    def primaries(self) -> list[str]:
        return [h for h, m in self.members.items()
                if m.node is not None and m.node.state == MemberState.PRIMARY]

    def primary(self) -> str | None:
        ps = self.primaries()
        if not ps:
            return None
        return max(ps, key=lambda h: self.node(h).term)

    def wait_for_primary(self, within_ms: int = 10_000) -> str | None:
        deadline = self.clock.now_ms + within_ms
        while self.clock.now_ms < deadline:
            p = self.primary()
            if p is not None and self.node(p).is_writable_primary:
                return p
            self.run_for(self.tick_ms)
        return None

    def states(self) -> dict[str, str]:
        return {h: (m.node.state.name if m.node else "CRASHED") for h, m in self.members.items()}

    def doc_ids(self, host: str) -> set[Any]:
        store = self.members[host].store
        if store is None:
            return set()
        coll = store.collection(NS)
        if coll is None:
            return set()
        return {d["_id"] for d in coll.documents()}

    def describe(self) -> str:
        parts = []
        for h, m in self.members.items():
            if m.node is None:
                parts.append(f"{h}=CRASHED")
            else:
                n = m.node
                parts.append(f"{h}={n.state.name}/t{n.term}/applied={n.applied}/"
                             f"cp={n.commit_point}/src={n.sync_source or '-'}")
        return f"t={self.clock.now_ms} " + " ".join(parts)


def _journal_last_optime(items: list[tuple[str, Any]]) -> OpTime | None:
    """The newest oplog optime the journal holds, after truncations and clears."""
    for kind, value in reversed(items):
        if kind == "E":
            return value.optime  # type: ignore[no-any-return]
        if kind == "T":
            return value  # type: ignore[no-any-return]
        if kind == "C":
            return None
    return None


def _recover(items: list[tuple[str, Any]], store: Store, oplog: Oplog) -> None:
    """Rebuild a member from its journal with the same replay the daemon uses."""
    from replnode import codec
    records: list[tuple[bytes, bytes, int]] = []
    for i, (kind, value) in enumerate(items):
        if kind == "E":
            records.append((jf.KIND_ENTRY, value.raw, i))
        elif kind == "X":
            records.append((jf.KIND_STORE_OP, codec.pack(value), i))
        elif kind == "T":
            records.append((jf.KIND_TRUNCATE, codec.pack([value.term, value.ts]), i))
        elif kind == "C":
            records.append((jf.KIND_CLEAR, b"", i))
    jf.replay([(0, records)], store, oplog, None)
