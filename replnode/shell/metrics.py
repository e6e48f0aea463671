"""Prometheus metrics at /metrics, computed from the member's state at scrape time.

Owns metric names and labels (prometheus-client conventions: `replnode_` prefix,
units in names, `_total` counters). Nothing on the hot path updates a metric:
a custom collector reads the Node and the command counters when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from replnode.domain import MemberState, OpTime, ts_secs


def _secs(optime: OpTime) -> float:
    return float(ts_secs(optime.ts)) if not optime.is_null() else 0.0


class _Collector:
    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        r = self.runner
        n = r.node
        yield from self._replication(n)
        yield from self._oplog(n)
        ops = CounterMetricFamily("replnode_commands", "Commands run, by name", labels=["command"])
        for name, count in sorted(r.command_counts.items()):
            ops.add_metric([name], count)
        yield ops
        fails = CounterMetricFamily("replnode_command_failures", "Commands that returned ok:0",
                                    labels=["command"])
        for name, count in sorted(r.command_failures.items()):
            fails.add_metric([name], count)
        yield fails

    def _replication(self, n: Any) -> Iterator[Metric]:
        state = GaugeMetricFamily("replnode_member_state", "This member's state (1 for the "
                                  "current one)", labels=["state"])
        for s in MemberState:
            state.add_metric([s.name], 1.0 if n.state == s else 0.0)
        yield state
        yield GaugeMetricFamily("replnode_term", "Current election term", value=n.term)
        yield CounterMetricFamily("replnode_elections_called", "Elections this member called",
                                  value=n.elections_called)
        yield CounterMetricFamily("replnode_elections_won", "Elections this member won",
                                  value=n.elections_won)
        yield CounterMetricFamily("replnode_rollbacks", "Rollbacks this member completed",
                                  value=n.rollbacks_done)
        yield GaugeMetricFamily("replnode_optime_applied_seconds",
                                "Last applied optime (timestamp seconds)", value=_secs(n.applied))
        yield GaugeMetricFamily("replnode_optime_committed_seconds",
                                "Majority commit point (timestamp seconds)",
                                value=_secs(n.commit_point))
        yield GaugeMetricFamily("replnode_has_primary", "1 when this member knows a primary",
                                value=1.0 if n.primary_host else 0.0)
        ping = GaugeMetricFamily("replnode_peer_heartbeat_rtt_seconds",
                                 "Averaged heartbeat round trip per member", labels=["member"])
        lag = GaugeMetricFamily("replnode_member_replication_lag_seconds",
                                "How far each member's applied optime is behind ours (on the "
                                "primary: behind the primary)", labels=["member"])
        health = GaugeMetricFamily("replnode_member_health", "1 up, 0 down, -1 never reached",
                                   labels=["member"])
        for view in n.views.values():
            if view.ping_ms is not None:
                ping.add_metric([view.host], view.ping_ms / 1000)
            health.add_metric([view.host], float(view.health))
            if view.applied_wall_ms and n.applied_wall_ms:
                lag.add_metric([view.host], max(0.0, (n.applied_wall_ms -
                                                      view.applied_wall_ms) / 1000))
        yield ping
        yield lag
        yield health
        st = n.initial_sync
        total, copied = st.bytes_totals() if st is not None else (0, 0)
        yield GaugeMetricFamily("replnode_initial_sync_active", "1 while an initial sync runs",
                                value=1.0 if st is not None else 0.0)
        yield GaugeMetricFamily("replnode_initial_sync_bytes_copied",
                                "Bytes copied by the running initial sync", value=copied)
        yield GaugeMetricFamily("replnode_initial_sync_bytes_total",
                                "Bytes the running initial sync must copy", value=total)

    def _oplog(self, n: Any) -> Iterator[Metric]:
        oplog = n.oplog
        yield GaugeMetricFamily("replnode_oplog_size_bytes", "Configured oplog size",
                                value=oplog.size_bytes_max)
        yield GaugeMetricFamily("replnode_oplog_used_bytes", "Bytes the oplog holds",
                                value=oplog.bytes_used)
        yield GaugeMetricFamily("replnode_oplog_entries", "Entries the oplog holds",
                                value=len(oplog))
        first, last = oplog.first_record(), oplog.last_record()
        window = 0.0
        if first is not None and last is not None:
            window = max(0, last.entry.get("wall", 0) - first.entry.get("wall", 0)) / 1000
        yield GaugeMetricFamily("replnode_oplog_window_seconds",
                                "Time between the oldest and newest oplog entry", value=window)


class Metrics:
    """A registry holding the collector; `render()` gives the exposition body."""

    def __init__(self, runner: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(runner))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
