"""Ingestion function: on its schedule, drains the persistence stream into MongoDB."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import single_metric

from aurora.backends import database, layout, redis_client
from aurora.drain import Drain, DrainSummary, partitions_of
from aurora.settings import get_settings

logger = Logger(service="ingest")
metrics = Metrics(service="ingest")  # namespace from POWERTOOLS_METRICS_NAMESPACE


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings = get_settings()
    summary = DrainSummary()
    drain = None

    def keep_going() -> bool:
        return context.get_remaining_time_in_millis() > settings.drain_safety_margin_ms

    try:
        drain = Drain(
            redis_client(settings.redis_url),
            database(settings),
            consumer=f"drain-{context.aws_request_id}",
            batch_size=settings.drain_batch_size,
            block_ms=settings.drain_block_ms,
            claim_idle_ms=settings.drain_claim_idle_ms,
            max_deliveries=settings.drain_max_deliveries,
            trim_interval_ms=settings.drain_trim_interval_ms,
            partitions=partitions_of(
                layout(settings), settings.stream_partitions_before, settings.drain_partitions
            ),
        )
        summary = drain.summary
        drain.run(keep_going, exit_when_idle=settings.drain_exit_when_idle)
    except Exception:
        # Lambda reports the run as failed; what it had not acknowledged
        # stays pending and the next run reclaims it.
        logger.exception(
            "drain failed; unacknowledged entries stay pending", extra=summary.as_dict()
        )
        raise
    finally:
        for name, unit, value in summary.metrics():
            metrics.add_metric(name=name, unit=unit, value=value)
        if drain is not None and len(drain.by_partition) > 1:
            _publish_per_partition(drain)
    # An idle run is routine: keep it quiet.
    (logger.info if summary.drained else logger.debug)("drain finished", extra=summary.as_dict())
    return summary.as_dict()


# What the alarms need to tell one stuck partition from a slow drain.
PER_PARTITION = ("PersistenceLag", "Backlog", "DeadLettered")


def _publish_per_partition(drain: Drain) -> None:
    """The partition's lag, backlog and dead letters, with a `partition`
    dimension (one EMF record each; the totals above keep `service` only)."""
    for partition, part_summary in drain.by_partition.items():
        for name, unit, value in part_summary.metrics():
            if name in PER_PARTITION:
                with single_metric(
                    name=name,
                    unit=unit,
                    value=value,
                    default_dimensions={"service": "ingest", "partition": partition},
                ):
                    pass
