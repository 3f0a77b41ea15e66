"""Blocking: a user's list of people who may not reach them in a direct room.

Someone you blocked can't open a direct room with you, nor post or type in
the one you share (an `error` `forbidden` on the WebSocket), and you don't see
their presence there. The list is kept in MongoDB's `blocks` collection and
mirrored in Redis under the blocker's hash tag (`keyspace.blocks_key`), which
the fan-out reads through the membership rule (`membership.Standing.blocked`);
each change is followed by a membership notice for the pair's direct room, so
every replica re-reads it at once. At most `MAX_BLOCKS_PER_USER` per user.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aurora import users
from aurora.backends import execute_then_publish, redis_unavailable
from aurora.errors import ConflictError, NotFoundError, ValidationError
from aurora.keyspace import MEMBERSHIP_CHANNEL, blocks_key
from aurora.membership import notice
from aurora.rooms import direct_room

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

    from aurora.settings import Settings
    from aurora.tokens import Claims

COLLECTION = users.BLOCKS  # its index: `users.ensure_indexes`


def _target(db: Database, username: str) -> tuple[str, str]:
    user = users.find_user(db, username) if users.is_valid_username(username) else None
    if user is None:
        raise NotFoundError("No such user", code="user_not_found")
    return str(user["_id"]), user["username"]


def _mirror(client: redis.Redis, user_id: str, blocked_id: str, *, add: bool) -> None:
    """The Redis copy, and a notice for the pair's direct room (if any) so the
    fan-out re-reads who may post there."""
    with redis_unavailable("Saved, but the change is not live yet: retry"):
        pipe = client.pipeline(transaction=True)
        if add:
            pipe.sadd(blocks_key(user_id), blocked_id)
        else:
            pipe.srem(blocks_key(user_id), blocked_id)
        room = direct_room(user_id, blocked_id)
        execute_then_publish(client, pipe, MEMBERSHIP_CHANNEL, notice(room, blocked_id))


def block(
    db: Database, client: redis.Redis, settings: Settings, claims: Claims, username: str
) -> dict[str, Any]:
    from pymongo.errors import DuplicateKeyError

    blocked_id, name = _target(db, username)
    if blocked_id == claims.user_id:
        raise ValidationError("You cannot block yourself", code="self_block")
    query = {"user_id": claims.user_id, "blocked_id": blocked_id}
    if db[COLLECTION].find_one(query, {"_id": 1}) is None:
        count = db[COLLECTION].count_documents(
            {"user_id": claims.user_id}, limit=settings.max_blocks_per_user
        )
        if count >= settings.max_blocks_per_user:
            raise ConflictError(
                f"At most {settings.max_blocks_per_user} blocked users", code="too_many_blocks"
            )
        doc = query | {"username": name, "at": datetime.now(UTC)}
        # A second PUT at the same time: blocked either way.
        with contextlib.suppress(DuplicateKeyError):
            db[COLLECTION].insert_one(doc)
    _mirror(client, claims.user_id, blocked_id, add=True)
    return {"blocked": {"user": name, "user_id": blocked_id}}


def unblock(db: Database, client: redis.Redis, claims: Claims, username: str) -> dict[str, Any]:
    blocked_id, _ = _target(db, username)
    db[COLLECTION].delete_one({"user_id": claims.user_id, "blocked_id": blocked_id})
    _mirror(client, claims.user_id, blocked_id, add=False)
    return {"ok": True}


def listing(db: Database, settings: Settings, claims: Claims) -> dict[str, Any]:
    """The caller's blocked users, newest first (at most the bound: no paging)."""
    found = db[COLLECTION].find(
        {"user_id": claims.user_id}, sort=[("at", -1)], limit=settings.max_blocks_per_user
    )
    return {"blocks": [{"user": d["username"], "user_id": d["blocked_id"]} for d in found]}


def blocks(db: Database, user_id: str, other_id: str) -> bool:
    """Whether `user_id` blocked `other_id` (MongoDB: REST paths)."""
    found = db[COLLECTION].find_one({"user_id": user_id, "blocked_id": other_id}, {"_id": 1})
    return found is not None


def rebuild_mirror(db: Database, client: redis.Redis) -> int:
    """Write every user's Redis copy again from MongoDB; returns the users written."""
    by_user: dict[str, set[str]] = {}
    for doc in db[COLLECTION].find({}, {"user_id": 1, "blocked_id": 1}):
        by_user.setdefault(doc["user_id"], set()).add(doc["blocked_id"])
    for user_id, blocked in by_user.items():
        with redis_unavailable():
            pipe = client.pipeline(transaction=True)
            pipe.delete(blocks_key(user_id))
            pipe.sadd(blocks_key(user_id), *blocked)
            pipe.execute()
    return len(by_user)
