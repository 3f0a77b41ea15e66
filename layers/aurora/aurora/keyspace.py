"""Every Redis key and pub/sub channel name, each with its type, its writer and
its lifetime: a key-naming scheme (e.g. Redis Cluster hash tags) changes here.

These names are stored data and wire format: existing keys, queued entries and
running replicas depend on them byte for byte (tests/unit/test_keyspace.py
pins each). Names with a variable part are built by functions; the
fixed names are constants.
"""

from __future__ import annotations

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
    `join` and after a reconnect. No expiry; the drain never touches it."""
    return f"aurora:window:{room}"


def rate_key(room: str, user_id: str) -> str:
    """String (counter): the user's sends to the room in the current window.
    Written by the send script; expires after `RATE_LIMIT_WINDOW_MS`."""
    return f"aurora:rate:{room}:{user_id}"


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
