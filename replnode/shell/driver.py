"""The one owner of the core `Node`: feeds it events, executes its actions in order.

Owns the bridge between asyncio and the synchronous core. Every event goes
through `Driver.step`, which never awaits, so no two steps interleave (asyncio
runs one callback at a time): that is the single-owner rule without a queue.
Actions run in list order: `Persist` (fsync) before the `Send`/`Reply` that
depends on it. Peer calls run as tasks whose results come back as events.
Contains no replication rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from replnode import limits
from replnode.core.actions import (
    CancelRpc, ClientReply, Persist, Reply, Send, WriteRollbackFiles,
)
from replnode.core.events import (
    ClientCommand, ClientWrite, Event, FailpointSet, JournalFlushed, OpSink, PeerFailed,
    PeerReply, PeerRequestIn, ShutdownStarted, Tick, WriteConcern,
)
from replnode.core.messages import FetchRequest, FetchResponse
from replnode.core.node import Node
from replnode.domain import OpTime
from replnode.errors import CommandError
from replnode.shell.journal import Journal
from replnode.shell.peers import PeerClient
from replnode.shell.persist import ReplStateStore, write_rollback_files

log = logging.getLogger("replnode.shell")


class MonotonicClock:
    """Milliseconds from time.monotonic; the core's `now_ms`."""

    def now_ms(self) -> int:
        return int(time.monotonic() * 1000)


class Driver:
    """Steps the Node and executes what it asks for."""

    def __init__(self, node: Node, *, clock: MonotonicClock, peers: PeerClient,
                 state_store: ReplStateStore, dbpath: str, journal: Journal | None = None,
                 on_step: Callable[[], None] | None = None) -> None:
        self.node = node
        self.clock = clock
        self.peers = peers
        self.state_store = state_store
        self.dbpath = dbpath
        self.on_step = on_step
        self._next_request = 1
        self._client_futures: dict[int, asyncio.Future[ClientReply]] = {}
        self._peer_replies: dict[int, Any] = {}
        self._rpc_tasks: dict[int, asyncio.Task[None]] = {}
        self._news = asyncio.Event()
        self._last_news: tuple[OpTime, OpTime, int, int] = self._news_key()
        self._tick_task: asyncio.Task[None] | None = None
        self._backlog_step_pending = False
        self.rollback_files: list[str] = []
        self.stopping = False
        self.journal = journal
        self._journal_wakeup = asyncio.Event()
        self._journal_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ stepping

    def step(self, event: Event) -> None:
        actions = self.node.step(event, self.clock.now_ms())
        if self.journal is not None:
            # Journal writes precede the actions: a Reply or Send never reports an entry
            # the OS has not been given (fsync comes from the flusher).
            items = self.node.take_journal()
            if items:
                self.journal.append(items)
                if self.node.durability_wanted():
                    self._journal_wakeup.set()
        for action in actions:
            self._execute(action)
        self._signal_news()
        if self.node.apply_backlog and not self._backlog_step_pending and not self.stopping:
            # The rest of a large fetched batch: another step once waiting I/O had its turn.
            self._backlog_step_pending = True
            asyncio.get_running_loop().call_soon(self._backlog_step)
        if self.on_step is not None:
            self.on_step()

    def _backlog_step(self) -> None:
        self._backlog_step_pending = False
        if not self.stopping:
            self.step(Tick())

    def _execute(self, action: Any) -> None:
        match action:
            case Persist(state=state):
                self.state_store.save(state)
            case Send():
                if not self.stopping:
                    task = asyncio.get_running_loop().create_task(self._call(action))
                    self._rpc_tasks[action.rpc_id] = task
            case Reply(handle=handle, response=response):
                self._peer_replies[handle] = response
            case ClientReply(request_id=rid):
                fut = self._client_futures.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result(action)
            case WriteRollbackFiles():
                paths = write_rollback_files(self.dbpath, action)
                self.rollback_files.extend(paths)
                log.info("rollback files written: %s", ", ".join(paths),
                         extra={"component": "ROLLBACK", "attr": {"files": paths}})
            case CancelRpc(rpc_id=rpc_id):
                pending = self._rpc_tasks.pop(rpc_id, None)
                if pending is not None:
                    pending.cancel()

    async def _call(self, send: Send) -> None:
        try:
            response, reason, rtt = await self.peers.call(send.target, send.request,
                                                         send.timeout_ms)
        except asyncio.CancelledError:
            return
        finally:
            self._rpc_tasks.pop(send.rpc_id, None)
        if self.stopping:
            return
        if response is None:
            self.step(PeerFailed(send.rpc_id, send.target, reason, rtt))
        else:
            self.step(PeerReply(send.rpc_id, send.target, response, rtt))

    def _news_key(self) -> tuple[OpTime, OpTime, int, int]:
        n = self.node
        return (n.applied, n.commit_point, n.term, int(n.state))

    def _signal_news(self) -> None:
        """Wake parked long-poll fetches when the oplog, commit point, term or state moved."""
        key = self._news_key()
        if key != self._last_news:
            self._last_news = key
            self._news.set()
            self._news = asyncio.Event()

    # ------------------------------------------------------------------ ticking

    def start(self, tick_ms: int = limits.tick_interval_ms) -> None:
        loop = asyncio.get_running_loop()
        self._tick_task = loop.create_task(self._tick_loop(tick_ms))
        if self.journal is not None:
            self._journal_task = loop.create_task(self._journal_loop(self.journal))

    async def _journal_loop(self, journal: Journal) -> None:
        """Group commit: one fsync covers everything written since the last one."""
        while not self.stopping:
            try:
                await asyncio.wait_for(self._journal_wakeup.wait(), journal.commit_interval_s)
            except asyncio.TimeoutError:
                pass
            self._journal_wakeup.clear()
            if journal.needs_flush():
                optime = await journal.flush()
                if optime is not None and not self.stopping:
                    self.step(JournalFlushed(optime))
            if journal.checkpoint_due() and not self.stopping:
                path = await journal.checkpoint(self.node.store, self.node.oplog,
                                                self.node.applied)
                log.info("checkpoint written: %s", path, extra={"component": "STORAGE"})

    async def _tick_loop(self, tick_ms: int) -> None:
        while not self.stopping:
            await asyncio.sleep(tick_ms / 1000)
            try:
                self.step(Tick())
            except Exception:
                log.exception("tick failed")
                raise

    async def stop(self) -> None:
        if self.stopping:
            return
        self.step(ShutdownStarted())
        self.stopping = True
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._journal_task is not None:
            self._journal_task.cancel()
        if self.journal is not None:
            self.journal.close()
        for task in list(self._rpc_tasks.values()):
            task.cancel()
        self._news.set()

    # ------------------------------------------------------------------ requests

    def _new_request_id(self) -> int:
        rid = self._next_request
        self._next_request += 1
        return rid

    async def _await_reply(self, rid: int, event: Event) -> ClientReply:
        if len(self._client_futures) >= limits.driver_queue_events_max:
            raise CommandError("ExceededTimeLimit", "too many requests in flight; retry later")
        fut: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._client_futures[rid] = fut
        self.step(event)
        try:
            return await fut
        finally:
            self._client_futures.pop(rid, None)

    async def client_write(self, write: Callable[[OpSink], Any],
                           concern: WriteConcern) -> ClientReply:
        rid = self._new_request_id()
        return await self._await_reply(rid, ClientWrite(rid, write, concern))

    async def client_command(self, name: str, args: dict[str, Any]) -> ClientReply:
        rid = self._new_request_id()
        return await self._await_reply(rid, ClientCommand(rid, name, args))

    def set_failpoint(self, name: str, enabled: bool, data: dict[str, Any]) -> None:
        self.step(FailpointSet(name, enabled, data))

    def _peer_step(self, request: Any) -> Any:
        handle = self._new_request_id()
        self.step(PeerRequestIn(handle, request))
        return self._peer_replies.pop(handle)

    async def peer_request(self, request: Any) -> Any:
        """Answer a member's request; an oplog fetch waits (long-poll) until there is news."""
        response = self._peer_step(request)
        if not isinstance(request, FetchRequest) or not isinstance(response, FetchResponse):
            return response
        deadline = time.monotonic() + min(request.await_ms, limits.fetch_await_ms_max) / 1000
        while response.ok and not response.entries and not self.stopping:
            if self.node.fetch_has_news(request):
                response = self._peer_step(request)
                if response.entries or not response.ok:
                    break
                if self.node.commit_point > request.known_commit_point or \
                        self.node.term > request.term:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            news = self._news
            try:
                await asyncio.wait_for(news.wait(), remaining)
            except asyncio.TimeoutError:
                break
            response = self._peer_step(request)
        return response
