"""Ingestion function: on its schedule, drains the persistence stream into MongoDB."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics

from aurora import drain_metrics
from aurora.backends import database, redis_client
from aurora.drain import Drain
from aurora.settings import get_settings

logger = Logger(service="ingest")
metrics = Metrics()  # namespace and service from POWERTOOLS_* (the template's Globals)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings = get_settings()
    client = redis_client(settings.redis_url)
    drain = Drain(
        client,
        database(settings),
        consumer=f"drain-{context.aws_request_id}",
        batch_size=settings.drain_batch_size,
        block_ms=settings.drain_block_ms,
        claim_idle_ms=settings.drain_claim_idle_ms,
    )

    def keep_going() -> bool:
        return context.get_remaining_time_in_millis() > settings.drain_safety_margin_ms

    summary = drain.run(keep_going, exit_when_idle=settings.drain_exit_when_idle).as_dict()
    drain_metrics.publish(metrics, summary, drain_metrics.stream_backlog(client))
    # An idle run is routine (every minute, or every 2 s locally): keep it quiet.
    (logger.info if summary["drained"] else logger.debug)("drain finished", extra=summary)
    return summary
