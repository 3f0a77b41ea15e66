"""Prometheus metrics of one replica, served at /metrics in the text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """One registry per server, so several replicas can share a test process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "aurora_fanout_connections", "Open, authenticated WebSocket connections", registry=r
        )
        self.messages_in = Counter(
            "aurora_fanout_messages_in", "Messages accepted from this replica's clients", registry=r
        )
        self.messages_out = Counter(
            "aurora_fanout_messages_out", "Frames written to this replica's clients", registry=r
        )
        self.rate_limited = Counter(
            "aurora_fanout_rate_limited", "Sends refused by the rate limit", registry=r
        )
        self.slow_disconnects = Counter(
            "aurora_fanout_slow_disconnects", "Clients closed with 4008 (too slow)", registry=r
        )
        self.flood_disconnects = Counter(
            "aurora_fanout_flood_disconnects",
            "Clients closed with 1008 (a sustained flood of frames)",
            registry=r,
        )
        self.revoked = Counter(
            "aurora_fanout_revoked",
            "Connections closed with 4001 because their token or session was revoked,"
            " found by a notice or by the periodic sweep (a notice that was lost)",
            ["trigger"],
            registry=r,
        )
        for trigger in ("notice", "sweep"):  # exported at 0 from the start
            self.revoked.labels(trigger)
        self.rejected = Counter(
            "aurora_fanout_rejected",
            "Connections refused or closed before use",
            ["reason"],
            registry=r,
        )
        self.send_latency = Histogram(
            "aurora_fanout_send_seconds",
            "Time to accept a message (the one Redis round trip of the send script)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
