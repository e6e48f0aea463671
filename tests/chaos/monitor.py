"""Watching the set: status polling during a run, and member log parsing after it.

Owns `StatusMonitor` (a thread polling every live member's `/status`, recording which member
reported PRIMARY in which term, and the latest primary for the nemesis to aim at) and
`parse_transitions` (state changes from the members' JSON log lines:
`member=H state=A->B term=T reason=...`). Both feed the at-most-one-primary-per-term check.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_INTERVAL_S = 0.3
POLLS_MAX = 100_000
TRANSITION = re.compile(r"member=(\S+) state=(\w+)->(\w+) term=(\d+)")


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change a member logged."""

    member: str
    old: str
    new: str
    term: int
    at: str  # the log line's timestamp, for reports
    source: str  # which log file


def parse_transitions(logpath: Path) -> list[Transition]:
    """Every state change in one member's log (JSON lines; other lines are skipped)."""
    if not logpath.exists():
        return []
    out = []
    for line in logpath.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        match = TRANSITION.search(str(record.get("msg", "")))
        if match is None:
            continue
        stamp = record.get("t", {})
        at = stamp.get("$date", "") if isinstance(stamp, dict) else str(stamp)
        out.append(
            Transition(
                match.group(1),
                match.group(2),
                match.group(3),
                int(match.group(4)),
                at,
                logpath.name,
            )
        )
    return out


class StatusMonitor(threading.Thread):
    """Polls members' `/status`; remembers (term -> primaries) and the current primary."""

    def __init__(
        self, hosts: Callable[[], list[str]], status: Callable[[str], dict[str, Any] | None]
    ) -> None:
        super().__init__(name="chaos-monitor", daemon=True)
        self.hosts = hosts
        self.status = status
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.primaries_by_term: dict[int, set[str]] = {}
        self.states_seen: dict[str, set[str]] = {}
        self._primary: tuple[str, int] | None = None
        self.errors: list[str] = []

    def run(self) -> None:
        """Poll until stopped (or POLLS_MAX rounds)."""
        for _ in range(POLLS_MAX):
            if self.stop_event.is_set():
                return
            for host in self.hosts():
                try:
                    self._observe(host, self.status(host))
                except (KeyError, TypeError, ValueError) as exc:  # a malformed status reply
                    self.errors.append(f"{host}: {type(exc).__name__}: {exc}")
            self.stop_event.wait(POLL_INTERVAL_S)

    def _observe(self, host: str, st: dict[str, Any] | None) -> None:
        """Record one member's own state and term from its status reply."""
        if st is None or st.get("ok") != 1:
            return
        me = [m for m in st.get("members", []) if m.get("self")]
        if not me:
            return
        state, term = str(me[0].get("stateStr")), int(st.get("term", -1))
        with self._lock:
            self.states_seen.setdefault(host, set()).add(state)
            if state == "PRIMARY":
                self.primaries_by_term.setdefault(term, set()).add(host)
                if self._primary is None or term >= self._primary[1]:
                    self._primary = (host, term)
            elif self._primary is not None and self._primary[0] == host:
                self._primary = None

    def primary(self) -> str | None:
        """The member most recently seen as primary in the highest term, if any."""
        with self._lock:
            return self._primary[0] if self._primary else None

    def forget(self, host: str) -> None:
        """Drop a member from the current-primary guess (it was just killed or paused)."""
        with self._lock:
            if self._primary is not None and self._primary[0] == host:
                self._primary = None

    def snapshot(self) -> dict[int, set[str]]:
        """Primaries seen per term so far."""
        with self._lock:
            return {t: set(h) for t, h in self.primaries_by_term.items()}

    def finish(self, timeout_s: float = 5.0) -> None:
        """Stop polling and wait for the thread."""
        self.stop_event.set()
        self.join(timeout_s)


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2) -> Any:
    """Poll `predicate` until truthy or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value
