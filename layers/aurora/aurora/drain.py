"""The persistence drain: moves accepted messages from the Redis stream into
MongoDB through a consumer group, in batches, exactly once in the database.

Order of operations for each batch: read -> insert_many(ordered=False) ->
XACK. A crash before the ack leaves the entries pending; a later run claims
them back (XAUTOCLAIM) and inserts them again, which MongoDB answers with
duplicate-key errors for what was already stored: already stored, not lost,
not stored twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aurora import messages
from aurora.errors import ValidationError
from aurora.stream import DEAD_LETTER_KEY, GROUP, STREAM_KEY, StreamEntry, next_id, parse_id

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

DUPLICATE_KEY = 11000


@dataclass
class DrainSummary:
    drained: int = 0
    inserted: int = 0
    duplicates: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    trimmed: int = 0
    max_lag_ms: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def ensure_group(client: redis.Redis) -> None:
    """Create the consumer group (and the stream) if they do not exist."""
    import redis

    try:
        client.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Drain:
    def __init__(
        self,
        client: redis.Redis,
        db: Database,
        *,
        consumer: str,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.redis = client
        self.collection = db[messages.COLLECTION]
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.summary = DrainSummary()

    def run(self, keep_going: Callable[[], bool], *, exit_when_idle: bool = True) -> DrainSummary:
        """Drain until idle (or until `keep_going()` says stop)."""
        ensure_group(self.redis)
        try:
            self._reclaim()
            while keep_going():
                batch = self._read()
                if batch:
                    self._store(batch)
                elif exit_when_idle:
                    break
            self._trim()
        finally:
            self._forget_consumer()
        return self.summary

    # -- reading -------------------------------------------------------------

    def _read(self) -> list[tuple[str, dict[str, Any]]]:
        reply = self.redis.xreadgroup(
            GROUP, self.consumer, {STREAM_KEY: ">"}, count=self.batch_size, block=self.block_ms
        )
        return reply[0][1] if reply else []

    def _reclaim(self) -> None:
        """Take over entries a crashed run left pending, then store them."""
        start = "0-0"
        while True:
            # Redis 7 adds a third element (deleted ids) that 6.2 does not send.
            start, claimed = self.redis.xautoclaim(
                STREAM_KEY,
                GROUP,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )[:2]
            if claimed:
                self.summary.reclaimed += len(claimed)
                self._store(claimed)
            if start == "0-0":
                return

    # -- storing -------------------------------------------------------------

    def _store(self, batch: list[tuple[str, dict[str, Any] | None]]) -> None:
        from pymongo.errors import BulkWriteError

        docs, poison = [], []
        for entry_id, fields in batch:
            try:
                docs.append(messages.document(StreamEntry.from_redis(entry_id, fields)))
            except ValidationError as exc:
                poison.append((entry_id, fields, exc))
        inserted = duplicates = 0
        if docs:
            try:
                inserted = len(self.collection.insert_many(docs, ordered=False).inserted_ids)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                duplicates = len(errors)
                inserted = exc.details.get("nInserted", len(docs) - duplicates)
        for entry_id, fields, exc in poison:
            self._dead_letter(entry_id, fields, exc)
        # Acknowledge only now that the database has the batch.
        self.redis.xack(STREAM_KEY, GROUP, *[entry_id for entry_id, _ in batch])
        self.summary.batches += 1
        self.summary.drained += len(batch)
        self.summary.inserted += inserted
        self.summary.duplicates += duplicates
        self.summary.dead_lettered += len(poison)
        newest_ms = max(parse_id(entry_id)[0] for entry_id, _ in batch)
        self.summary.max_lag_ms = max(self.summary.max_lag_ms, int(time.time() * 1000) - newest_ms)

    def _dead_letter(self, entry_id: str, fields: dict[str, Any] | None, exc: Exception) -> None:
        self.redis.xadd(
            DEAD_LETTER_KEY,
            {
                "source_id": entry_id,
                "reason": str(exc),
                "fields": json.dumps(fields or {}, ensure_ascii=False),
            },
        )

    # -- retention -----------------------------------------------------------

    def _trim(self) -> None:
        """Drop entries every group has acknowledged, and nothing newer."""
        floor = None
        for group in self.redis.xinfo_groups(STREAM_KEY):
            pending = self.redis.xpending(STREAM_KEY, group["name"])
            if pending["pending"]:
                candidate = pending["min"]
            else:
                last = group["last-delivered-id"]
                candidate = next_id(last) if last != "0-0" else "0-1"
            if floor is None or parse_id(candidate) < parse_id(floor):
                floor = candidate
        if floor is not None:
            self.summary.trimmed += self.redis.xtrim(STREAM_KEY, minid=floor)

    def _forget_consumer(self) -> None:
        """Remove this run's consumer from the group if it holds nothing."""
        import redis

        try:
            consumers = self.redis.xinfo_consumers(STREAM_KEY, GROUP)
            mine = [c for c in consumers if c["name"] == self.consumer]
            if mine and mine[0]["pending"] == 0:
                self.redis.xgroup_delconsumer(STREAM_KEY, GROUP, self.consumer)
        except redis.RedisError:  # housekeeping only: never masks the run's outcome
            pass
