"""The persistence drain: moves accepted messages from the Redis stream into
MongoDB through a consumer group, in batches, exactly once in the database.

Order of operations for each batch: read -> insert_many(ordered=False),
journaled -> XACK. A crash before the ack leaves the entries pending; a later run claims
them back (XAUTOCLAIM) and inserts them again, which MongoDB answers with
duplicate-key errors for what was already stored: already stored, not lost,
not stored twice. Entries that can never be stored (unparseable, rejected by
the database, or delivered too many times) are dead-lettered and
acknowledged in one transaction, so they never block the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aurora import deadletters, messages, rooms
from aurora.errors import ValidationError
from aurora.keyspace import JOINS_STREAM_KEY, STREAM_KEY, room_members_key
from aurora.stream import GROUP, StreamEntry, next_id, parse_id

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

# Server error codes that say "try again later", not "this document is bad":
# a batch that meets one stays pending for the next run instead of being
# dead-lettered. (Interrupted, shutdown, step-down, not primary, timeouts,
# write conflict, network.)
TRANSIENT_CODES = frozenset({6, 7, 11, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435})

Entry = tuple[str, dict[str, Any] | None]
DELETED = deadletters.Reason("empty_entry", "Entry has no fields (deleted?)")


@dataclass
class DrainSummary:
    """What one run did; returned by the handler and published as metrics."""

    drained: int = 0  # entries handled (stored, duplicate or dead-lettered) and acknowledged
    inserted: int = 0  # new documents in MongoDB
    duplicates: int = 0  # entries MongoDB already had (a crashed run's work)
    reclaimed: int = 0  # entries taken over from a crashed or timed-out run
    dead_lettered: int = 0
    batches: int = 0
    trimmed: int = 0  # stream entries removed after every group acknowledged them
    max_lag_ms: int = 0  # oldest entry's age when its batch was acknowledged
    # At the end of the run: entries of the group still pending, plus (Redis 7)
    # those not yet read. Growing from run to run: the drain is not keeping up.
    backlog: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def mean_batch_size(self) -> float:
        return self.drained / self.batches if self.batches else 0.0

    def metrics(self) -> list[tuple[str, str, float]]:
        """(name, CloudWatch unit, value) of every metric a run publishes."""
        return [
            ("Drained", "Count", self.drained),
            ("Inserted", "Count", self.inserted),
            ("Duplicates", "Count", self.duplicates),
            ("Reclaimed", "Count", self.reclaimed),
            ("DeadLettered", "Count", self.dead_lettered),
            ("Trimmed", "Count", self.trimmed),
            ("BatchSize", "Count", self.mean_batch_size),
            ("PersistenceLag", "Milliseconds", self.max_lag_ms),
            ("Backlog", "Count", self.backlog),
        ]


def ensure_group(client: redis.Redis) -> None:
    """Create the consumer group (and the stream) if they do not exist.

    Cheap enough to run on every invocation, and it must: a Redis that lost
    its data (no AOF) comes back without the group, and a group recreated at
    "0" re-reads what is left, which the database answers with duplicates.
    """
    import redis

    for key in (STREAM_KEY, JOINS_STREAM_KEY):
        try:
            client.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class Drain:
    """One run of the drain, as one consumer of the group."""

    def __init__(
        self,
        client: redis.Redis,
        db: Database,
        *,
        consumer: str,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        trim_interval_ms: int = 1000,
    ) -> None:
        from pymongo import WriteConcern

        self.redis = client
        # Acknowledged in Redis only once journaled: a write MongoDB has only
        # in memory is lost if it crashes, and the stream entry with it. (The
        # URL's own write concern, e.g. w=majority, is kept.)
        journaled = WriteConcern(**(db.write_concern.document | {"j": True}))
        self.db = db.with_options(write_concern=journaled)
        self.collection = self.db[messages.COLLECTION]
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.trim_interval_ms = trim_interval_ms
        self.summary = DrainSummary()
        self._last_trim = 0.0
        self._last_reclaim = 0.0

    def run(self, keep_going: Callable[[], bool], *, exit_when_idle: bool = False) -> DrainSummary:
        """Drain while `keep_going()` says so; with `exit_when_idle`, stop at
        the first empty read instead (cheaper, more lag)."""
        # An unreachable database fails the run before it takes any entry, so
        # an outage does not count as deliveries towards the poison limit.
        self.db.command("ping")
        ensure_group(self.redis)
        try:
            self._reclaim()
            self._store_joins(reclaim=True)
            while keep_going():
                self._store_joins()
                batch = self._read()
                if batch:
                    self._store(batch)
                elif exit_when_idle:
                    break
                self._trim(every_ms=self.trim_interval_ms)
                # A long run also takes over what an overlapping run left
                # behind when it died, instead of leaving it to the next run.
                if (time.monotonic() - self._last_reclaim) * 1000 >= self.claim_idle_ms:
                    self._reclaim()
                    self._store_joins(reclaim=True)
            self._trim()
        finally:
            self._forget_consumer()
        return self.summary

    # -- reading -------------------------------------------------------------

    def _read(self) -> list[Entry]:
        reply = self.redis.xreadgroup(
            GROUP, self.consumer, {STREAM_KEY: ">"}, count=self.batch_size, block=self.block_ms
        )
        return reply[0][1] if reply else []

    def _reclaim(self) -> None:
        """Take over entries a crashed run left pending, then store them.

        Entries delivered more than `max_deliveries` times are poison: some
        run died on each of them, so they are dead-lettered, not retried.
        """
        start = "0-0"
        while True:
            reply = self.redis.xautoclaim(
                STREAM_KEY,
                GROUP,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            start, claimed = reply[0], reply[1]
            # Entries deleted from the stream while pending: Redis 6.2 hands
            # them over as (None, None), still pending; Redis 7 drops them
            # from the pending list and lists their ids. Either way the
            # message is gone: say so in a dead letter.
            if any(entry_id is None for entry_id, _ in claimed):
                claimed = self._name_the_deleted(claimed)
            for entry_id in reply[2] if len(reply) > 2 else []:
                deadletters.record(self.redis, entry_id, None, DELETED)
                self.summary.dead_lettered += 1
            if claimed:
                self.summary.reclaimed += len(claimed)
                deliveries = self._deliveries([entry_id for entry_id, _ in claimed])
                worn_out = {
                    entry_id: deadletters.Reason(
                        "too_many_deliveries", f"Delivered {deliveries[entry_id]} times"
                    )
                    for entry_id, _ in claimed
                    if deliveries.get(entry_id, 0) > self.max_deliveries
                }
                self._store(claimed, worn_out)
            if start == "0-0":
                self._last_reclaim = time.monotonic()
                return

    def _name_the_deleted(self, claimed: list[Entry]) -> list[Entry]:
        """Redis 6.2: find the ids of the (None, None) entries we now own
        (everything this consumer holds that came back without an id), so
        they are dead-lettered as empty entries and acknowledged."""
        present = [(entry_id, fields) for entry_id, fields in claimed if entry_id is not None]
        known = {entry_id for entry_id, _ in present}
        mine = self.redis.xpending_range(
            STREAM_KEY, GROUP, min="-", max="+", count=len(claimed), consumername=self.consumer
        )
        return present + [(p["message_id"], None) for p in mine if p["message_id"] not in known]

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        """How many times each of these entries (now ours) has been delivered."""
        ordered = sorted(ids, key=parse_id)
        pending = self.redis.xpending_range(
            STREAM_KEY,
            GROUP,
            min=ordered[0],
            max=ordered[-1],
            count=len(ids),
            consumername=self.consumer,
        )
        return {p["message_id"]: p["times_delivered"] for p in pending}

    # -- storing -------------------------------------------------------------

    def _store(
        self, batch: list[Entry], poison: dict[str, deadletters.Reason] | None = None
    ) -> None:
        poison = dict(poison or {})
        docs, doc_ids = [], []
        for entry_id, fields in batch:
            if entry_id in poison:
                continue
            try:
                docs.append(messages.document(StreamEntry.from_redis(entry_id, fields)))
                doc_ids.append(entry_id)
            except ValidationError as exc:
                poison[entry_id] = deadletters.Reason(exc.code, str(exc))
        inserted, duplicates, rejected = self._insert(docs, doc_ids)
        poison.update(rejected)
        # Duplicates count too: they may be a crashed run's batch whose rooms
        # were never recorded. `$max` makes doing it again harmless.
        rooms.record_activity(self.db, (d for d in docs if d["_id"] not in rejected))

        # Dead letters and the ack in one transaction: a crash leaves either
        # both undone (the entries are retried) or both done.
        fields_of = dict(batch)
        pipe = self.redis.pipeline(transaction=True)
        for entry_id, reason in poison.items():
            deadletters.record(pipe, entry_id, fields_of.get(entry_id), reason)
        # Acknowledge only now that the database has the batch.
        pipe.xack(STREAM_KEY, GROUP, *fields_of)
        pipe.execute()

        oldest_ms = min(parse_id(entry_id)[0] for entry_id in fields_of)
        lag_ms = int(time.time() * 1000) - oldest_ms
        self.summary.batches += 1
        self.summary.drained += len(batch)
        self.summary.inserted += inserted
        self.summary.duplicates += duplicates
        self.summary.dead_lettered += len(poison)
        self.summary.max_lag_ms = max(self.summary.max_lag_ms, lag_ms)

    def _insert(
        self, docs: list[dict[str, Any]], ids: list[str]
    ) -> tuple[int, int, dict[str, deadletters.Reason]]:
        """(inserted, duplicates, rejected) for one unordered insert_many.

        Raises (so nothing is acknowledged) on anything that may be transient.
        """
        from pymongo.errors import BulkWriteError

        if not docs:
            return 0, 0, {}
        try:
            return len(self.collection.insert_many(docs, ordered=False).inserted_ids), 0, {}
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if details.get("writeConcernErrors") or any(
                e.get("code") in TRANSIENT_CODES for e in errors
            ):
                raise
            duplicates, rejected = 0, {}
            for error in errors:
                if _is_duplicate_id(error):
                    duplicates += 1
                else:
                    # The database will refuse this document every time.
                    rejected[ids[error["index"]]] = deadletters.Reason(
                        "rejected_by_database",
                        f"MongoDB error {error.get('code')}: {error.get('errmsg', '')}"[:500],
                    )
            return details.get("nInserted", len(docs) - len(errors)), duplicates, rejected

    # -- joins of public rooms (the fan-out's, from JOINS_STREAM_KEY) ---------

    def _store_joins(self, *, reclaim: bool = False) -> None:
        """Persist the memberships public-room joins made: upsert each (and a
        room document, so the room lists), acknowledge after the write, then
        delete the entries. Upserts are idempotent, so a redelivery (a crashed
        run's entries, reclaimed) changes nothing. A join whose member is no
        longer in the mirror (left or removed meanwhile) is not stored."""
        if reclaim:
            entries = self.redis.xautoclaim(
                JOINS_STREAM_KEY, GROUP, self.consumer, min_idle_time=self.claim_idle_ms,
                start_id="0-0", count=self.batch_size,
            )[1]  # fmt: skip
        else:
            reply = self.redis.xreadgroup(
                GROUP, self.consumer, {JOINS_STREAM_KEY: ">"}, count=self.batch_size
            )
            entries = reply[0][1] if reply else []
        ids = [entry_id for entry_id, _ in entries if entry_id is not None]
        joins = {
            (f["room"], f["user_id"]): f.get("username", "")
            for _, f in entries
            if f and isinstance(f.get("room"), str) and isinstance(f.get("user_id"), str)
        }
        if joins:
            pipe = self.redis.pipeline(transaction=False)
            for room, user_id in joins:
                pipe.hexists(room_members_key(room), user_id)
            current = pipe.execute()
            rooms.record_joins(
                self.db,
                {k: v for (k, v), still in zip(joins.items(), current, strict=True) if still},
            )
        if ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(JOINS_STREAM_KEY, GROUP, *ids)
            pipe.xdel(JOINS_STREAM_KEY, *ids)
            pipe.execute()

    # -- retention -----------------------------------------------------------

    def _trim(self, every_ms: int = 0) -> None:
        """Drop entries every group has acknowledged, and nothing newer.

        Not atomic, and need not be: between reading the floor and trimming,
        entries can only be acknowledged (the floor only rises) or newly
        delivered (always above the group's last-delivered id).
        """
        now = time.monotonic()
        if every_ms and (now - self._last_trim) * 1000 < every_ms:
            return
        self._last_trim = now
        floor = None
        for group in self.redis.xinfo_groups(STREAM_KEY):
            if group["name"] == GROUP:
                self.summary.backlog = group["pending"] + (group.get("lag") or 0)
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
        """Remove this run's consumer from the group if it holds nothing.

        Only its own: deleting another consumer drops whatever it holds, and
        an apparently idle one may be a live run about to read a batch.
        """
        import redis

        for key in (STREAM_KEY, JOINS_STREAM_KEY):
            try:
                consumers = self.redis.xinfo_consumers(key, GROUP)
                mine = [c for c in consumers if c["name"] == self.consumer]
                if mine and mine[0]["pending"] == 0:
                    self.redis.xgroup_delconsumer(key, GROUP, self.consumer)
            except redis.RedisError:  # housekeeping only: never masks the run's outcome
                pass


def _is_duplicate_id(error: dict[str, Any]) -> bool:
    """A duplicate `_id` means "already stored"; a duplicate on another
    unique index is a real rejection."""
    if error.get("code") != messages.DUPLICATE_KEY:
        return False
    pattern = error.get("keyPattern")
    if pattern is not None:
        return set(pattern) == {"_id"}
    return "_id_" in error.get("errmsg", "")
