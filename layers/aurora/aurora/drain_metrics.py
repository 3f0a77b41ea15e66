"""What the drain reports to CloudWatch after each run (the template's alarms
watch these): how late messages reach MongoDB, how many wait, how many were
dead-lettered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aurora.stream import GROUP, STREAM_KEY

if TYPE_CHECKING:
    import redis


def stream_backlog(client: redis.Redis) -> int:
    """Entries the drain still has to store: delivered but unacknowledged
    (pending) plus not yet delivered (the group's lag).

    Redis 7 reports the lag; Redis 6.2 does not, and the stream length is
    used instead (an upper bound: only the drain trims the stream).
    """
    for group in client.xinfo_groups(STREAM_KEY):
        if group.get("name") == GROUP:
            lag = group.get("lag")
            if lag is None:
                return int(client.xlen(STREAM_KEY))
            return int(group.get("pending", 0)) + int(lag)
    return int(client.xlen(STREAM_KEY))


def publish(metrics: Any, summary: dict[str, int], backlog: int) -> None:
    """Add one run's figures to a Powertools `Metrics` (flushed as EMF by its decorator)."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name="Drained", unit=MetricUnit.Count, value=summary["drained"])
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=summary["dead_lettered"])
    metrics.add_metric(
        name="DrainMaxLagMs", unit=MetricUnit.Milliseconds, value=summary["max_lag_ms"]
    )
    metrics.add_metric(name="StreamBacklog", unit=MetricUnit.Count, value=backlog)
