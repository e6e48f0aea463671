"""Test hooks (only with --setParameter enableTestCommands=1), in MongoDB's shape.

    {configureFailPoint: NAME, mode: "alwaysOn" | "off" | {times: N}, data: {...}}

Owns the failpoint table. Shell failpoints: `dropInternalMessages` (data:
{hosts: [h:p, ...], direction: "in" | "out" | "both"}) and
`delayInternalMessages` (data: {hosts, delayMs}) act on member-to-member
traffic, so partitions can be made without root; `stopReplProducer` and
`rsSyncApplyStop` and `initialSyncHangBeforeFinish` are passed to the core. A
failpoint can also be on from the start: `--setParameter failpoint.NAME=1`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replnode.core.rsconfig import normalize_host
from replnode.errors import CommandError

SHELL_FAILPOINTS = {"dropInternalMessages", "delayInternalMessages"}
CORE_FAILPOINTS = {"stopReplProducer", "rsSyncApplyStop", "initialSyncHangBeforeFinish"}
KNOWN = SHELL_FAILPOINTS | CORE_FAILPOINTS


@dataclass
class _FailPoint:
    data: dict[str, Any]
    times: int  # -1 = always


@dataclass
class Failpoints:
    points: dict[str, _FailPoint] = field(default_factory=dict)

    def configure(self, name: Any, mode: Any, data: Any) -> dict[str, Any]:
        if name not in KNOWN:
            raise CommandError("BadValue", f"unknown failpoint {name!r}; known: {sorted(KNOWN)}")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise CommandError("TypeMismatch", "failpoint 'data' must be an object")
        previous = 1 if name in self.points else 0
        if mode == "off":
            self.points.pop(name, None)
        elif mode == "alwaysOn":
            self.points[name] = _FailPoint(dict(data), -1)
        elif isinstance(mode, dict) and isinstance(mode.get("times"), int) and mode["times"] > 0:
            self.points[name] = _FailPoint(dict(data), int(mode["times"]))
        else:
            raise CommandError("BadValue", "mode must be 'alwaysOn', 'off' or {times: N}")
        return {"count": previous, "ok": 1.0}

    def enabled(self, name: str) -> bool:
        return name in self.points

    def _take(self, name: str) -> dict[str, Any] | None:
        fp = self.points.get(name)
        if fp is None:
            return None
        if fp.times > 0:
            fp.times -= 1
            if fp.times == 0:
                del self.points[name]
        return fp.data

    def _matches(self, data: dict[str, Any], host: str, direction: str) -> bool:
        hosts = {normalize_host(h) for h in data.get("hosts", []) if isinstance(h, str)}
        wanted = data.get("direction", "both")
        if wanted not in ("both", direction):
            return False
        return not hosts or normalize_host(host) in hosts

    def drops(self, host: str, direction: str) -> bool:
        """Whether a message to (out) or from (in) `host` is to be dropped."""
        fp = self.points.get("dropInternalMessages")
        if fp is None or not self._matches(fp.data, host, direction):
            return False
        return self._take("dropInternalMessages") is not None

    def delay_ms(self, host: str, direction: str) -> int:
        fp = self.points.get("delayInternalMessages")
        if fp is None or not self._matches(fp.data, host, direction):
            return 0
        data = self._take("delayInternalMessages") or {}
        return int(data.get("delayMs", 0))
