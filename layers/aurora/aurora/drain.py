"""The persistence drain: moves accepted messages from the Redis stream into
MongoDB through a consumer group, in batches, exactly once in the database.

Order of operations for each batch: read -> insert_many(ordered=False) of
the messages -> apply the changes (edit, delete, react: `aurora.message_state`,
idempotent and in id order; cursor moves: `aurora.receipts`) -> one journaled
write, which makes all of them durable -> XACK. A crash before the ack leaves
the entries pending; a later run claims them back (XAUTOCLAIM) and inserts them
again, which MongoDB answers with duplicate-key errors for what was already
stored: already stored, not lost, not stored twice; changes applied again
change nothing. Entries that can never be stored (unparseable, rejected by
the database, or delivered too many times) are dead-lettered and
acknowledged in one transaction, so they never block the pipeline.

The stream may be P partitions (`aurora.keyspace.Layout`); each has its own
consumer group, dead letters, reclaim and trimming, all within its own hash
slot. One run divides its time between them in rounds: each round gives every
partition at most one batch (a flooded partition cannot starve the others);
a round that found nothing anywhere waits for new entries: on one Redis with
one blocking read of every partition, on a cluster (where a read spans one
slot) 50 ms on each partition in turn. The stored key is room + id
(`messages.stored_key`): ids are unique per partition only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aurora import audit, deadletters, message_state, messages, receipts, room_list, rooms
from aurora.backends import is_cluster
from aurora.errors import ValidationError
from aurora.keyspace import JOINS_STREAM_KEY, SINGLE, Layout, room_members_key
from aurora.stream import CURSOR_KINDS, GROUP, ChangeEntry, next_id, parse_entry, parse_id

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

# Server error codes that say "try again later", not "this document is bad":
# a batch that meets one stays pending for the next run instead of being
# dead-lettered. (Interrupted, shutdown, step-down, not primary, timeouts,
# write conflict, network.)
TRANSIENT_CODES = frozenset({6, 7, 11, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435})

Entry = tuple[str, dict[str, Any] | None]
# One document, written journaled at the end of every round (`_make_durable`).
DURABLE = "drain"
# An idle run on a cluster waits this long on one partition, then the next:
# a new entry elsewhere waits at most about this (x P only when all are idle).
CLUSTER_WAIT_MS = 50


@dataclass(frozen=True)
class Partition:
    """One partition of the persistence stream and its dead letters."""

    name: str  # "0".."P-1"; "before:<P>:<i>" for a layout being retired
    stream: str
    dead: str


def partitions_of(
    layout: Layout, before: tuple[int, ...] = (), only: tuple[int, ...] = ()
) -> list[Partition]:
    """The layout's partitions (or `only` these, `DRAIN_PARTITIONS`: one
    schedule per group), then, for the group that drains all, those of
    earlier partition counts (`STREAM_PARTITIONS_BEFORE`) still to be
    emptied after a change."""
    found = [
        Partition(str(i), layout.stream_key(i), layout.dead_letter_key(i))
        for i in range(layout.partitions)
        if not only or i in only
    ]
    if only:
        return found
    streams = {p.stream for p in found}
    for count in before:
        old = Layout(cluster=layout.cluster, partitions=count)
        for i in range(count):
            if old.stream_key(i) not in streams:
                streams.add(old.stream_key(i))
                found.append(
                    Partition(f"before:{count}:{i}", old.stream_key(i), old.dead_letter_key(i))
                )
    return found


DELETED = deadletters.Reason("empty_entry", "Entry has no fields (deleted?)")


@dataclass
class DrainSummary:
    """What one run did; returned by the handler and published as metrics."""

    drained: int = 0  # entries handled (stored, duplicate or dead-lettered) and acknowledged
    inserted: int = 0  # new documents in MongoDB
    duplicates: int = 0  # entries MongoDB already had (a crashed run's work)
    changes: int = 0  # change entries (edit, delete, react, read, delivered) handled
    changed: int = 0  # message documents a change was written to
    parked: int = 0  # changes kept until their message is stored
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

    def add(self, other: DrainSummary) -> None:
        """Fold a partition's summary into this total."""
        for name, value in asdict(other).items():
            if name == "max_lag_ms":
                self.max_lag_ms = max(self.max_lag_ms, value)
            else:
                setattr(self, name, getattr(self, name) + value)

    @property
    def mean_batch_size(self) -> float:
        return self.drained / self.batches if self.batches else 0.0

    def metrics(self) -> list[tuple[str, str, float]]:
        """(name, CloudWatch unit, value) of every metric a run publishes."""
        return [
            ("Drained", "Count", self.drained),
            ("Inserted", "Count", self.inserted),
            ("Duplicates", "Count", self.duplicates),
            ("Changes", "Count", self.changes),
            ("Parked", "Count", self.parked),
            ("Reclaimed", "Count", self.reclaimed),
            ("DeadLettered", "Count", self.dead_lettered),
            ("Trimmed", "Count", self.trimmed),
            ("BatchSize", "Count", self.mean_batch_size),
            ("PersistenceLag", "Milliseconds", self.max_lag_ms),
            ("Backlog", "Count", self.backlog),
        ]


def ensure_group(client: redis.Redis, streams: list[str] | None = None) -> None:
    """Create the consumer group (and the stream) if they do not exist, on
    every partition and the joins stream.

    Cheap enough to run on every invocation, and it must: a Redis that lost
    its data (no AOF) comes back without the group, and a group recreated at
    "0" re-reads what is left, which the database answers with duplicates.
    """
    import redis

    for key in (*(streams or SINGLE.stream_keys()), JOINS_STREAM_KEY):
        try:
            client.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class Drain:
    """One run of the drain, as one consumer of the group of every partition."""

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
        partitions: list[Partition] | None = None,
    ) -> None:
        from pymongo import WriteConcern

        self.redis = client
        # Acknowledged in Redis only once journaled: a write MongoDB has only
        # in memory is lost if it crashes, and the stream entry with it. (The
        # URL's own write concern, e.g. w=majority, is kept.)
        journaled = WriteConcern(**(db.write_concern.document | {"j": True}))
        self.db = db.with_options(write_concern=journaled)
        # A round's writes (inserts, changes, cursors) wait for the server
        # only; one journaled write at the end of the round (`_make_durable`)
        # then makes them all durable at once, before anything is
        # acknowledged. A bulk write with j: true may sync the journal once
        # per statement (SecantusDB does: ~5 ms per update here), and a round
        # may hold hundreds of updates.
        unjournaled = WriteConcern(**(db.write_concern.document | {"j": False}))
        self.round_db = db.with_options(write_concern=unjournaled)
        self.known = message_state.Known()  # messages this run wrote or read
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.trim_interval_ms = trim_interval_ms
        self.partitions = partitions or partitions_of(SINGLE)
        # Each partition's own account; `summary` is their total.
        self.by_partition = {p.name: DrainSummary() for p in self.partitions}
        self.summary = DrainSummary()
        self._round_changes = DrainSummary()  # what no one partition did alone
        self._last_trim = dict.fromkeys(self.by_partition, 0.0)
        self._last_reclaim = dict.fromkeys(self.by_partition, 0.0)
        self._waits = 0  # which partition the next idle round waits on

    def run(self, keep_going: Callable[[], bool], *, exit_when_idle: bool = False) -> DrainSummary:
        """Drain while `keep_going()` says so; with `exit_when_idle`, stop at
        the first round that finds every partition empty instead (cheaper,
        more lag)."""
        # An unreachable database fails the run before it takes any entry, so
        # an outage does not count as deliveries towards the poison limit.
        self.db.command("ping")
        ensure_group(self.redis, [p.stream for p in self.partitions])
        try:
            for part in self.partitions:
                self._reclaim(part)
            self._store_joins(reclaim=True)
            while keep_going():
                # One round: at most a batch of each partition, stored together.
                work = []
                for part in self.partitions:
                    if not keep_going():
                        break
                    batch = self._read(part, block_ms=None)
                    if batch:
                        work.append((part, batch, {}))
                if work:
                    self._store_many(work)
                else:
                    self._store_joins()  # joins with no message after them yet
                for part in self.partitions:
                    self._housekeeping(part)
                if not work:
                    if exit_when_idle:
                        break
                    self._wait_for_entries()
            for part in self.partitions:
                self._trim(part)
        finally:
            self._total()
            self._forget_consumer()
        return self.summary

    def _wait_for_entries(self) -> None:
        """Every partition was empty: wait for the next entry. On one Redis,
        one blocking read of every partition at once; on a cluster (a read
        spans one slot) a short one on each partition in turn."""
        if not self.block_ms:
            return
        if not is_cluster(self.redis) or len(self.partitions) == 1:
            streams = {part.stream: ">" for part in self.partitions}
            reply = self.redis.xreadgroup(
                GROUP, self.consumer, streams, count=self.batch_size, block=self.block_ms
            )
            by_stream = {part.stream: part for part in self.partitions}
            work = [(by_stream[stream], batch, {}) for stream, batch in reply or [] if batch]
            if work:
                self._store_many(work)
            return
        part = self.partitions[self._waits % len(self.partitions)]
        self._waits += 1
        batch = self._read(part, block_ms=max(1, min(self.block_ms, CLUSTER_WAIT_MS)))
        if batch:
            self._store(part, batch)

    def _housekeeping(self, part: Partition) -> None:
        self._trim(part, every_ms=self.trim_interval_ms)
        # A long run also takes over what an overlapping run left behind
        # when it died, instead of leaving it to the next run.
        if (time.monotonic() - self._last_reclaim[part.name]) * 1000 >= self.claim_idle_ms:
            self._reclaim(part)
            self._store_joins(reclaim=True)

    def _total(self) -> None:
        total = DrainSummary()
        for summary in self.by_partition.values():
            total.add(summary)
        total.add(self._round_changes)
        for name, value in asdict(total).items():
            setattr(self.summary, name, value)

    # -- reading -------------------------------------------------------------

    def _read(self, part: Partition, *, block_ms: int | None) -> list[Entry]:
        reply = self.redis.xreadgroup(
            GROUP, self.consumer, {part.stream: ">"}, count=self.batch_size, block=block_ms
        )
        return reply[0][1] if reply else []

    def _reclaim(self, part: Partition) -> None:
        """Take over entries a crashed run left pending, then store them.

        Entries delivered more than `max_deliveries` times are poison: some
        run died on each of them, so they are dead-lettered, not retried.
        """
        start = "0-0"
        summary = self.by_partition[part.name]
        while True:
            reply = self.redis.xautoclaim(
                part.stream,
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
                claimed = self._name_the_deleted(part, claimed)
            for entry_id in reply[2] if len(reply) > 2 else []:
                deadletters.record(self.redis, entry_id, None, DELETED, key=part.dead)
                summary.dead_lettered += 1
            if claimed:
                summary.reclaimed += len(claimed)
                deliveries = self._deliveries(part, [entry_id for entry_id, _ in claimed])
                worn_out = {
                    entry_id: deadletters.Reason(
                        "too_many_deliveries", f"Delivered {deliveries[entry_id]} times"
                    )
                    for entry_id, _ in claimed
                    if deliveries.get(entry_id, 0) > self.max_deliveries
                }
                self._store(part, claimed, worn_out)
            if start == "0-0":
                self._last_reclaim[part.name] = time.monotonic()
                return

    def _name_the_deleted(self, part: Partition, claimed: list[Entry]) -> list[Entry]:
        """Redis 6.2: find the ids of the (None, None) entries we now own
        (everything this consumer holds that came back without an id), so
        they are dead-lettered as empty entries and acknowledged."""
        present = [(entry_id, fields) for entry_id, fields in claimed if entry_id is not None]
        known = {entry_id for entry_id, _ in present}
        mine = self.redis.xpending_range(
            part.stream, GROUP, min="-", max="+", count=len(claimed), consumername=self.consumer
        )
        return present + [(p["message_id"], None) for p in mine if p["message_id"] not in known]

    def _deliveries(self, part: Partition, ids: list[str]) -> dict[str, int]:
        """How many times each of these entries (now ours) has been delivered."""
        ordered = sorted(ids, key=parse_id)
        pending = self.redis.xpending_range(
            part.stream,
            GROUP,
            min=ordered[0],
            max=ordered[-1],
            count=len(ids),
            consumername=self.consumer,
        )
        return {p["message_id"]: p["times_delivered"] for p in pending}

    # -- storing -------------------------------------------------------------

    def _store(
        self,
        part: Partition,
        batch: list[Entry],
        poison: dict[str, deadletters.Reason] | None = None,
    ) -> None:
        self._store_many([(part, batch, dict(poison or {}))])

    def _store_many(
        self, work: list[tuple[Partition, list[Entry], dict[str, deadletters.Reason]]]
    ) -> None:
        """Store the batches of several partitions with one insert_many (one
        database round trip per round, however many partitions had entries),
        apply their changes, then acknowledge each partition's batch in its
        own transaction.

        The joins queued so far are stored first: a sender's join is queued
        before their message, so it is stored no later than the message (a
        room is in its sender's listing once its message is in history)."""
        self._store_joins()
        try:
            self._store_round(work)
        except BaseException:
            # Its writes may be lost with the database's unjournaled tail.
            self.known.clear()
            raise

    def _store_round(
        self, work: list[tuple[Partition, list[Entry], dict[str, deadletters.Reason]]]
    ) -> None:
        docs: list[dict[str, Any]] = []
        owner: list[int] = []  # the position in `work` of each document
        changes: list[ChangeEntry] = []
        cursors: list[ChangeEntry] = []
        changes_of = [0] * len(work)  # change entries per position in `work`
        for position, (_, batch, poison) in enumerate(work):
            for entry_id, fields in batch:
                if entry_id in poison:
                    continue
                try:
                    entry = parse_entry(entry_id, fields)
                except ValidationError as exc:
                    poison[entry_id] = deadletters.Reason(exc.code, str(exc))
                    continue
                if isinstance(entry, ChangeEntry):
                    (cursors if entry.kind in CURSOR_KINDS else changes).append(entry)
                    changes_of[position] += 1
                else:
                    docs.append(messages.document(entry))
                    owner.append(position)
        # Changes of messages in this round go into their documents before
        # the insert: most changes follow their message within a batch, and
        # then cost no write of their own. (Rooms never share documents, so
        # mixing partitions changes nothing to the order within a room.)
        folded, changes = message_state.fold_into_new(docs, changes)
        duplicate, rejected = self._insert(docs)
        for index, reason in rejected.items():
            work[owner[index]][2][docs[index]["id"]] = reason
        stored = [d for i, d in enumerate(docs) if i not in rejected]
        for i, doc in enumerate(docs):
            if i not in duplicate and i not in rejected:
                self.known.put(doc)  # as inserted: its changes need no read
        # Duplicates count too: they may be a crashed run's batch whose rooms
        # were never recorded. `$max` makes doing it again harmless.
        room_list.record_activity(self.round_db, self.redis, stored)
        # A message already stored (a crashed run's) or refused did not take
        # its folded changes: they go the usual way (applied, or parked).
        not_new = duplicate | set(rejected)
        changes += [c for i, d in enumerate(docs) if i in not_new for c in folded.get(d["_id"], ())]
        # The rest, with those parked before their message arrived: one
        # read, one bulk write.
        changed, parked = message_state.apply(
            self.round_db, changes, [d["_id"] for d in stored], self.known
        )
        receipts.persist(self.round_db, cursors)
        deletes = [c for c in changes if c.kind == "delete"]
        deletes += [c for batch in folded.values() for c in batch if c.kind == "delete"]
        audit.record_message_deletes(self.round_db, deletes)
        self._make_durable()
        # Documents written and changes parked are the round's, not one
        # partition's: counted in the run's total only.
        self._round_changes.changed += changed + len(folded)
        self._round_changes.parked += parked

        now_ms = int(time.time() * 1000)
        for position, (part, batch, poison) in enumerate(work):
            # Dead letters and the ack in one transaction (one slot: the
            # partition's): a crash leaves either both undone (the entries
            # are retried) or both done.
            fields_of = dict(batch)
            pipe = self.redis.pipeline(transaction=True)
            for entry_id, reason in poison.items():
                deadletters.record(pipe, entry_id, fields_of.get(entry_id), reason, key=part.dead)
            # Acknowledge only now that the database has the batch.
            pipe.xack(part.stream, GROUP, *fields_of)
            pipe.execute()

            mine = [i for i, p in enumerate(owner) if p == position]
            duplicates = sum(1 for i in mine if i in duplicate)
            summary = self.by_partition[part.name]
            summary.batches += 1
            summary.drained += len(batch)
            summary.inserted += len(mine) - duplicates - sum(1 for i in mine if i in rejected)
            summary.duplicates += duplicates
            summary.changes += changes_of[position]
            summary.dead_lettered += len(poison)
            oldest_ms = min(parse_id(entry_id)[0] for entry_id in fields_of)
            summary.max_lag_ms = max(summary.max_lag_ms, now_ms - oldest_ms)
        self._total()

    def _make_durable(self) -> None:
        """One journaled write: the journal is one sequential log, so
        syncing it up to this write syncs every write before it (MongoDB's
        journaling: a j: true write syncs the buffered journal records).
        A crash before it leaves the round unacknowledged, to be applied
        again, which changes nothing."""
        from pymongo.errors import DuplicateKeyError

        try:
            self.db[DURABLE].update_one({"_id": "rounds"}, {"$inc": {"count": 1}}, upsert=True)
        except DuplicateKeyError:  # two runs' first rounds at once: it exists now
            self.db[DURABLE].update_one({"_id": "rounds"}, {"$inc": {"count": 1}})

    def _insert(self, docs: list[dict[str, Any]]) -> tuple[set[int], dict[int, deadletters.Reason]]:
        """The positions of the duplicates and of the rejected documents of
        one unordered insert_many.

        Raises (so nothing is acknowledged) on anything that may be transient.
        """
        from pymongo.errors import BulkWriteError

        if not docs:
            return set(), {}
        try:
            self.round_db[messages.COLLECTION].insert_many(docs, ordered=False)
            return set(), {}
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if details.get("writeConcernErrors") or any(
                e.get("code") in TRANSIENT_CODES for e in errors
            ):
                raise
            duplicate, rejected = set(), {}
            for error in errors:
                if _is_duplicate_id(error):
                    duplicate.add(error["index"])
                else:
                    # The database will refuse this document every time.
                    rejected[error["index"]] = deadletters.Reason(
                        "rejected_by_database",
                        f"MongoDB error {error.get('code')}: {error.get('errmsg', '')}"[:500],
                    )
            return duplicate, rejected

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
            kept = {k: v for (k, v), still in zip(joins.items(), current, strict=True) if still}
            rooms.record_joins(self.db, kept)
            room_list.copy_current(self.db, self.redis, {room for room, _ in kept})
            room_list.lists_changed(self.redis, {user_id for _, user_id in kept})
        if ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(JOINS_STREAM_KEY, GROUP, *ids)
            pipe.xdel(JOINS_STREAM_KEY, *ids)
            pipe.execute()

    # -- retention -----------------------------------------------------------

    def _trim(self, part: Partition, every_ms: int = 0) -> None:
        """Drop entries every group has acknowledged, and nothing newer.

        Not atomic, and need not be: between reading the floor and trimming,
        entries can only be acknowledged (the floor only rises) or newly
        delivered (always above the group's last-delivered id).
        """
        now = time.monotonic()
        if every_ms and (now - self._last_trim[part.name]) * 1000 < every_ms:
            return
        self._last_trim[part.name] = now
        floor = None
        summary = self.by_partition[part.name]
        for group in self.redis.xinfo_groups(part.stream):
            if group["name"] == GROUP:
                summary.backlog = group["pending"] + (group.get("lag") or 0)
            pending = self.redis.xpending(part.stream, group["name"])
            if pending["pending"]:
                candidate = pending["min"]
            else:
                last = group["last-delivered-id"]
                candidate = next_id(last) if last != "0-0" else "0-1"
            if floor is None or parse_id(candidate) < parse_id(floor):
                floor = candidate
        if floor is not None:
            summary.trimmed += self.redis.xtrim(part.stream, minid=floor)
        self._total()

    def _forget_consumer(self) -> None:
        """Remove this run's consumer from the group if it holds nothing.

        Only its own: deleting another consumer drops whatever it holds, and
        an apparently idle one may be a live run about to read a batch.
        """
        import redis

        for key in (*(p.stream for p in self.partitions), JOINS_STREAM_KEY):
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
