"""Ingestion function: on its schedule, drains the persistence stream into MongoDB."""

from typing import Any

from aws_lambda_powertools import Logger

from aurora.backends import database, redis_client
from aurora.drain import Drain
from aurora.settings import get_settings

logger = Logger(service="ingest")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings = get_settings()
    drain = Drain(
        redis_client(settings.redis_url),
        database(settings),
        consumer=f"drain-{context.aws_request_id}",
        batch_size=settings.drain_batch_size,
        block_ms=settings.drain_block_ms,
        claim_idle_ms=settings.drain_claim_idle_ms,
    )

    def keep_going() -> bool:
        return context.get_remaining_time_in_millis() > settings.drain_safety_margin_ms

    summary = drain.run(keep_going, exit_when_idle=settings.drain_exit_when_idle).as_dict()
    # An idle run is routine (every minute, or every 2 s locally): keep it quiet.
    (logger.info if summary["drained"] else logger.debug)("drain finished", extra=summary)
    return summary
