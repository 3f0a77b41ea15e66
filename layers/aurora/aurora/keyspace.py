"""Every Redis key and pub/sub channel name, each with its type, its writer and
its lifetime: a key-naming scheme (e.g. Redis Cluster hash tags) changes here.

These names are stored data and wire format: existing keys, queued entries and
running replicas depend on them byte for byte (tests/unit/test_keyspace.py
pins each). Names with a variable part are built by functions; the
fixed names are constants.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

# -- messages: accepted, queued for the database, replayed on resume --------------

# Stream: every accepted message, schema in `aurora.stream`; the entry id is the
# message id. Written by the send script (`aurora.sending`). Read by the drain's
# consumer group, which alone trims it, never past an unacknowledged entry.
STREAM_KEY = "aurora:messages"

# Stream: entries the drain could never store, with the reason. Written by the
# drain (`aurora.drain`); kept until an operator replays or deletes them
# (`python scripts/deadletters.py`).
DEAD_LETTER_KEY = "aurora:messages:dead"

_ROOM_CHANNEL = "aurora:room:"


def room_channel(room: str) -> str:
    """Channel: the room's broadcasts, `"<id> <frame>"` (`-` as the id for
    ephemeral frames: typing). Published by the send script and by
    `Sender.publish_ephemeral`; subscribed by every fan-out replica with a
    member in the room. Pub/sub: nothing is kept."""
    return _ROOM_CHANNEL + room


def room_of_channel(channel: str) -> str:
    """The room a `room_channel()` name is for."""
    return channel[len(_ROOM_CHANNEL) :]


def window_key(room: str) -> str:
    """Stream: the room's resume window, the last `RESUME_WINDOW` broadcast
    frames (field `f`), ids equal to the persistence stream's. Written and
    trimmed exactly (`MAXLEN`) by the send script; read by the fan-out on
    `join` and after a reconnect. Expires `RESUME_WINDOW_TTL_SECONDS` after
    the room's last message; the drain never touches it."""
    return f"aurora:window:{room}"


# The keys of a message's life after sending (`aurora.changes`,
# `aurora.receipts`) carry the room as hash tag `{room}`, as the membership
# mirror's do. The scripts that touch them also append to the persistence
# stream: on a cluster `Layout` names them in the room's partition slot.


def tombstones_key(room: str) -> str:
    """Sorted set: ids of the room's messages deleted while their delete is in
    the resume window (score: the delete's milliseconds). Written and trimmed
    by the change script (`aurora.changes`); read by resume, which drops those
    messages' frames and edits. Members leave once their delete leaves the
    window."""
    return f"aurora:tombstones:{{{room}}}"


def reactions_key(room: str, message_id: str) -> str:
    """Hash: who reacted with what to one message while it is in the room's
    resume window (`u:<user id>:<emoji>` -> "1", `n:<user id>` -> how many
    distinct, `s` -> "1" once the state exists). Written by the change script
    (`aurora.changes`); deleted by the send and change scripts when the
    message leaves the window, and with the message. Counted afresh from
    MongoDB for an older message (REST): then it expires after an hour."""
    return f"aurora:reactions:{{{room}}}:{message_id}"


def reaction_counts_key(room: str, message_id: str) -> str:
    """Hash: emoji -> count for one message; the companion of
    `reactions_key`, with its writer and lifetime. Named from its prefix
    (`reactions_key(room, "")` + "counts:" + id): the scripts delete both
    for the message leaving the window."""
    return f"{reactions_key(room, '')}counts:{message_id}"


def room_counter_key(room: str) -> str:
    """String (counter): the number of the room's newest message (`n`: 1, 2,
    …, in order). Written (INCR) by the send script; no expiry. Unread
    counts are differences of these numbers (`aurora.receipts`). Raised to
    the newest stored number by `recount.rebuild_counts`."""
    return f"aurora:count:{{{room}}}"


def own_messages_key(room: str, user_id: str) -> str:
    """Sorted set: the numbers (`n`) of the user's messages in the room that
    are after their read cursor and not deleted (they never count as
    unread for them). Written by the send script (ZADD), the change script
    (a delete removes one), the read script (trims up to the cursor) and
    `recount.rebuild_counts` (adds from MongoDB)."""
    return f"aurora:own:{{{room}}}:{user_id}"


def deleted_numbers_key(room: str) -> str:
    """Sorted set: the numbers (`n`) of the room's deleted messages (they
    never count as unread). Written by the change script and
    `recount.rebuild_counts`; no expiry (one small entry per deleted message)."""
    return f"aurora:deletedn:{{{room}}}"


def cursors_key(room: str, kind: str) -> str:
    """Hash: user id -> "<n> <message id>", the newest message of the room
    the user has read (`kind` "read") or their client received
    ("delivered"). Only moves forward. Written by the read script
    (`aurora.receipts`); no expiry; persisted to MongoDB by the drain, and
    moved forward from there by `recount.rebuild_counts`."""
    return f"aurora:{kind}:{{{room}}}"


def change_rate_key(room: str, user_id: str) -> str:
    """String (counter): the user's changes (edit, delete) to the room's
    messages in the current window. Written by the change script; expires
    after `RATE_LIMIT_CHANGES_WINDOW_MS`."""
    return f"aurora:changerate:{{{room}}}:{user_id}"


def rate_key(room: str, user_id: str) -> str:
    """String (counter): the user's sends to the room in the current window.
    Written by the send script; expires after `RATE_LIMIT_WINDOW_MS`."""
    return f"aurora:rate:{room}:{user_id}"


def budget_key(user_id: str) -> str:
    """Hash: the user's send budget across every room, two token buckets
    (`m` messages, `b` bytes, `t` last refill in ms). Written by
    `aurora.budget`; expires once both buckets would be full again. Hash
    tag `{user_id}`: one Cluster slot per user."""
    return f"aurora:budget:{{{user_id}}}"


def reads_key(user_id: str) -> str:
    """Hash: the user's REST read budget (history, search, room listing), one
    token bucket in the fields of `budget_key`. Written by `aurora.budget`;
    expires once the bucket would be full again."""
    return f"aurora:reads:{{{user_id}}}"


def idempotency_key(user_id: str, client_id: str) -> str:
    """String: the id of the user's first send with this `client_id`. Written
    by the send script; expires after `IDEMPOTENCY_TTL_SECONDS`."""
    return f"aurora:idem:{user_id}:{client_id}"


# -- rooms and membership: the mirror of MongoDB the fan-out reads (`aurora.membership`)
# The three keys of one room share the hash tag `{room}`: one slot in Redis
# Cluster, so the membership check is one pipelined round trip on one node.


def room_info_key(room: str) -> str:
    """Hash: a created room's `visibility` (public | private), `owner` (user
    id), `title`, `deleted` ("1" once deleted). Absent for a room nobody
    created (an open public room). Written by `aurora.membership` after the
    MongoDB document; kept after deletion (ids are never reused), rebuilt from
    MongoDB by `membership.rebuild_mirror`."""
    return f"aurora:roominfo:{{{room}}}"


def room_members_key(room: str) -> str:
    """Hash: user id -> role (owner | admin | member). Written by
    `aurora.membership` (REST, after MongoDB) and by the fan-out's join of a
    public room (`fanout.access`, with its `JOINS_STREAM_KEY` entry); deleted
    with the room."""
    return f"aurora:members:{{{room}}}"


def room_bans_key(room: str) -> str:
    """Set: banned user ids. Written by `aurora.membership` after MongoDB;
    deleted with the room."""
    return f"aurora:bans:{{{room}}}"


def room_lock_key(room: str) -> str:
    """String: held (SET NX PX) while one membership change of the room is
    written to MongoDB and then the mirror, so two changes at once (an invite
    and a removal) reach both in the same order. Written by
    `membership.room_lock`; expires after `ROOM_LOCK_MS` should its holder die."""
    return f"aurora:lock:{{{room}}}"


def room_copied_key(room: str) -> str:
    """String: the room's key (or "big") last copied into all its memberships
    (`aurora.room_list`), so the drain skips a room whose copy is fresh.
    Written by the drain after the copy; expires a day after. Losing it costs
    one more copy."""
    return f"aurora:roomcopied:{{{room}}}"


def room_last_key(room: str) -> str:
    """String: the room's `last` as stored in MongoDB (`rooms.activity_key`
    form), which the listing orders its page's edge by (`aurora.room_list`).
    Raised, never lowered, by the drain after it raises the room document's,
    and by the listing from a room document newer than it; expires a day
    after. Losing it costs reading the room document instead."""
    return f"aurora:roomlast:{{{room}}}"


def my_rooms_key(user_id: str) -> str:
    """Hash: the user's rooms as the listing last read them from MongoDB
    (`rows`: JSON [[room, role, copied activity], ...], or null for a user
    in more rooms than the listing caches) and the version of
    the list (`v`), raised (and `rows` dropped) whenever a room joins or
    leaves it or the user's role changes (`aurora.room_list.lists_changed`).
    Expires 10 minutes after its last write. Losing it costs one slower
    listing."""
    return f"aurora:myrooms:{{{user_id}}}"


def rooms_floor_key(user_id: str) -> str:
    """String: an activity key at or below the top of this user's room list
    (`aurora.room_list`, a hint that bounds the first page's read). Written
    by the messages function's listing; expires a day after it was placed.
    Losing it costs one slower listing."""
    return f"aurora:roomsfloor:{{{user_id}}}"


# Channel: `{"room", "user_id"?}` after every membership change, published by
# `aurora.membership` after the mirror is written; subscribed by every fan-out
# replica, which drops its cached answers for the room and re-checks its local
# members there. A notice has no authority: the mirror is the truth.
MEMBERSHIP_CHANNEL = "aurora:membership"

# Stream: joins of public rooms made over the WebSocket (`room`, `user_id`,
# `username`), written by the fan-out with the mirror's `HSETNX` in one
# script; persisted to MongoDB by the drain's consumer group `ingest`
# (idempotent upserts, acknowledged after the write, then deleted).
JOINS_STREAM_KEY = "aurora:joins"


def blocks_key(user_id: str) -> str:
    """Set: the user ids this user blocked. Written by `aurora.blocks` after
    MongoDB (with a membership notice for the pair's direct room), read by the
    membership rule for direct rooms; no expiry (at most `MAX_BLOCKS_PER_USER`),
    rebuilt from MongoDB by `blocks.rebuild_mirror`. Hash tag: the user."""
    return f"aurora:blocks:{{{user_id}}}"


# -- presence: who is online in a room (`fanout.presence`) -------------------------
# Both keys of one room share its hash tag `{room}`; every write is a script
# on that slot. Entries carry their own expiry: a replica refreshes what it
# holds every third of `PRESENCE_TTL_SECONDS`, so a dead replica's entries
# lapse within it and the live replicas' sweeps announce them offline.


def presence_key(room: str) -> str:
    """Sorted set: `"<user_id> <username>"` -> expiry (Redis time, ms), one per
    online user whatever their number of connections. Written by the fan-out's
    presence scripts (hold, release, sweep); the key expires with its newest
    entry, so an empty room leaves nothing behind."""
    return f"aurora:presence:{{{room}}}"


def presence_holders_key(room: str, user_id: str) -> str:
    """Hash: replica id -> expiry (ms) of the replicas holding a connection of
    this user in this room (a user is offline when the last one lets go).
    Written by the presence scripts; the key expires with its newest entry."""
    return f"aurora:presence:{{{room}}}:{user_id}"


def attachment_rooms_key(url_digest: str) -> str:
    """Set: the rooms a message carrying this attachment was accepted in
    (digest: SHA-256 of the attachment URL). Written by the fan-out after the
    send; read by the download link. No expiry: lives as long as the file."""
    return f"aurora:attachment:{url_digest}:rooms"


def attachment_withdrawn_key(url_digest: str) -> str:
    """String (`"1"`): the message carrying this attachment was deleted; its
    download link is refused to everyone from then on. Written by
    `aurora.attachments.withdraw*` after the delete was accepted. No expiry."""
    return f"aurora:attachment:{url_digest}:withdrawn"


def storage_key(user_id: str) -> str:
    """String (counter): bytes of attachment uploads granted to the user, the
    storage budget's use. Written by `aurora.budget` when an upload link is
    granted; no expiry (attachments are kept), hash tag `{user_id}`."""
    return f"aurora:storage:{{{user_id}}}"


def room_creations_key(user_id: str) -> str:
    """String (counter): rooms the user created in the current window.
    Written by `aurora.throttling`; expires after one minute."""
    return f"aurora:throttle:rooms:{user_id}"


# -- connections: the per-user cap across fan-out replicas -----------------------


def connections_key(user_id: str) -> str:
    """Sorted set: one lease per open connection of the user (member
    `replica:connection`, score its expiry in Redis time). Written by the
    fan-out (`fanout.connection_limit`); leases renewed every lease/3, the key
    expires `CONNECTION_LEASE_SECONDS` after the last renewal."""
    return f"aurora:conns:{user_id}"


# -- sessions and revocation (`aurora.sessions`, `aurora.tokens`) ----------------


def session_key(session_id: str) -> str:
    """Hash: a live session (`secret_hash` of its refresh token, `user_id`,
    `username`). Written by `aurora.sessions`; expires `REFRESH_TTL_SECONDS`
    after the last refresh, deleted on logout or revocation."""
    return f"aurora:session:{session_id}"


def user_sessions_key(user_id: str) -> str:
    """Sorted set: the user's session ids by opening time, at most
    `MAX_SESSIONS_PER_USER`. Written by `aurora.sessions`; expires with the
    sessions (`REFRESH_TTL_SECONDS`), deleted on a password change."""
    return f"aurora:user:{user_id}:sessions"


def revoked_key(token_id: str) -> str:
    """String (`"1"`): a logged-out access token, by its `jti`. Written by
    `aurora.sessions`; expires when the token would have (exp + leeway)."""
    return f"aurora:revoked:{token_id}"


# Channel: `{"user_id", "reason"}` per revocation, published by
# `aurora.sessions` with the revocation's own write; subscribed by every
# fan-out replica, which re-checks that user's connections.
REVOCATIONS_CHANNEL = "aurora:revocations"


# -- throttling (`aurora.throttling`): counters keyed by a digest ----------------


def login_failures_key(digest: str) -> str:
    """String (counter): failed logins of one username from one network.
    Written by `aurora.throttling`; expires `LOGIN_FAILURE_WINDOW_SECONDS`
    after the first failure, deleted by a successful login."""
    return f"aurora:throttle:login:{digest}"


def network_login_failures_key(digest: str) -> str:
    """String (counter): failed logins from one network, any username.
    Written by `aurora.throttling`; expires `LOGIN_FAILURE_WINDOW_SECONDS`
    after the first failure."""
    return f"aurora:throttle:login-ip:{digest}"


def registrations_key(digest: str) -> str:
    """String (counter): registrations from one network. Written by
    `aurora.throttling`; expires `REGISTRATION_WINDOW_SECONDS` after the first."""
    return f"aurora:throttle:register:{digest}"


# -- Redis Cluster: one slot per persistence partition ---------------------------
# The send script is one atomic script, so every key it touches must be in one
# hash slot. A room's keys cannot carry `{room}` for that: the partition stream
# it appends to is shared by many rooms. So on a cluster a room's window, rate
# counters, idempotency keys and channel carry the hash tag of the room's
# partition, as do the partition's stream and dead letters: P partitions are P
# slots, chosen to spread evenly over the slot space (so over the masters of a
# cluster whose slots are split evenly). The membership mirror keeps `{room}`:
# it is read on its own (one round trip for the room's three keys), never by
# the send script. On a single Redis with one partition every name is the one
# above, unchanged.

CLUSTER_SLOTS = 16384


@lru_cache(maxsize=512)
def partition_tag(partition: int, partitions: int) -> str:
    """The hash tag of partition `partition` of `partitions`: the first of
    `m<i>`, `m<i>.1`, `m<i>.2`, ... whose slot falls in the i-th equal share
    of the 16,384 slots. Deterministic: every process finds the same tags."""
    from redis.crc import key_slot

    low = partition * CLUSTER_SLOTS // partitions
    high = (partition + 1) * CLUSTER_SLOTS // partitions
    n = 0
    while True:
        tag = f"m{partition}" if n == 0 else f"m{partition}.{n}"
        if low <= key_slot(tag.encode()) < high:
            return tag
        n += 1


@dataclass(frozen=True)
class Layout:
    """Where a deployment's messages and room keys live: on a cluster or
    not, over how many persistence partitions (fixed per deployment,
    `STREAM_PARTITIONS`; docs/operations.md says how to change it)."""

    cluster: bool = False
    partitions: int = 1

    @property
    def tagged(self) -> bool:
        """Whether names carry partition hash tags (anything but the original
        single stream)."""
        return self.cluster or self.partitions > 1

    def partition_of(self, room: str) -> int:
        """The room's partition: CRC-32 of its id, modulo P (stable across
        processes and versions, unlike Python's `hash`)."""
        return zlib.crc32(room.encode()) % self.partitions if self.partitions > 1 else 0

    def stream_key(self, partition: int) -> str:
        """Stream: partition `partition` of the persistence stream (as
        `STREAM_KEY`; `aurora:messages:{<tag>}` once there are partitions)."""
        if not self.tagged:
            return STREAM_KEY
        return f"{STREAM_KEY}:{{{partition_tag(partition, self.partitions)}}}"

    def dead_letter_key(self, partition: int) -> str:
        """Stream: the partition's dead letters (as `DEAD_LETTER_KEY`), in the
        partition's slot: a dead letter is written with the ack it replaces."""
        if not self.tagged:
            return DEAD_LETTER_KEY
        return f"{DEAD_LETTER_KEY}:{{{partition_tag(partition, self.partitions)}}}"

    def stream_keys(self) -> list[str]:
        return [self.stream_key(p) for p in range(self.partitions)]

    def room_stream_key(self, room: str) -> str:
        return self.stream_key(self.partition_of(room))

    def _in_room_slot(self, name: str, room: str) -> str:
        """`name` (ending in ":") then the room's partition tag, on a cluster."""
        if not self.cluster:
            return name
        return f"{name}{{{partition_tag(self.partition_of(room), self.partitions)}}}:"

    def window_key(self, room: str) -> str:
        """As `window_key`, in the room's partition slot on a cluster."""
        return self._in_room_slot("aurora:window:", room) + room

    def rate_key(self, room: str, user_id: str) -> str:
        """As `rate_key`, in the room's partition slot on a cluster."""
        return self._in_room_slot("aurora:rate:", room) + f"{room}:{user_id}"

    def idempotency_key(self, room: str, user_id: str, client_id: str) -> str:
        """As `idempotency_key`; on a cluster in the room's partition slot and
        so per room (client ids are unique per message anyway)."""
        if not self.cluster:
            return idempotency_key(user_id, client_id)
        return self._in_room_slot("aurora:idem:", room) + f"{room}:{user_id}:{client_id}"

    # The keys of a message's life after it is sent (`aurora.changes`,
    # `aurora.receipts`) and of presence (`aurora.presence`): scripts touch
    # them with the partition stream or the room's shard channel, so on a
    # cluster they move to the room's partition slot too. Elsewhere they are
    # the module's names of the same function.

    def _in_partition(self, name: str, room: str) -> str:
        """`name` (which carries `{room}`) in the room's partition slot on a
        cluster: the partition's tag goes first, so it is the hash tag, and
        the room's braces stay, so names of different rooms stay apart."""
        if not self.cluster:
            return name
        prefix, _, rest = name.partition("{")
        tag = partition_tag(self.partition_of(room), self.partitions)
        return f"{prefix}{{{tag}}}:{{{rest}"

    def tombstones_key(self, room: str) -> str:
        return self._in_partition(tombstones_key(room), room)

    def reactions_key(self, room: str, message_id: str) -> str:
        return self._in_partition(reactions_key(room, message_id), room)

    def reaction_counts_key(self, room: str, message_id: str) -> str:
        return f"{self.reactions_key(room, '')}counts:{message_id}"

    def room_counter_key(self, room: str) -> str:
        return self._in_partition(room_counter_key(room), room)

    def own_messages_key(self, room: str, user_id: str) -> str:
        return self._in_partition(own_messages_key(room, user_id), room)

    def deleted_numbers_key(self, room: str) -> str:
        return self._in_partition(deleted_numbers_key(room), room)

    def cursors_key(self, room: str, kind: str) -> str:
        return self._in_partition(cursors_key(room, kind), room)

    def change_rate_key(self, room: str, user_id: str) -> str:
        return self._in_partition(change_rate_key(room, user_id), room)

    def presence_key(self, room: str) -> str:
        return self._in_partition(presence_key(room), room)

    def presence_holders_key(self, room: str, user_id: str) -> str:
        return self._in_partition(presence_holders_key(room, user_id), room)

    def room_channel(self, room: str) -> str:
        """As `room_channel`; on a cluster a shard channel (SPUBLISH) in the
        room's partition slot, so a broadcast travels to one node only."""
        return self._in_room_slot(_ROOM_CHANNEL, room) + room

    def room_of_channel(self, channel: str) -> str:
        """The room a `room_channel()` name is for."""
        name = channel[len(_ROOM_CHANNEL) :]
        if self.cluster and name.startswith("{"):
            name = name[name.index("}:") + 2 :]
        return name


SINGLE = Layout()  # one Redis, one stream: the original names
