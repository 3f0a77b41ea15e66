"""Who may read a room: the one rule, over the Redis mirror of MongoDB's rooms,
memberships and bans, with a sync face (REST) and an async face (the fan-out).
Also the mirror's writes, each followed by a notice, and its rebuild.

The rule: a deleted room, nobody; a banned user, nobody; a public room (or an
id nobody created: an open public room, as `general` is), anyone; a private
room, its members. One pipelined round trip reads what it needs; MongoDB is
never asked per check. Writers update MongoDB first, then the mirror and the
notice in one `MULTI`, so a replica that hears the notice reads the new state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora import operators, room_list
from aurora.backends import (
    execute_then_publish,
    is_cluster,
    redis_client,
    redis_unavailable,
    room_window_key,
)
from aurora.errors import ForbiddenError, UnavailableError, ValidationError
from aurora.keyspace import (
    JOINS_STREAM_KEY,
    MEMBERSHIP_CHANNEL,
    attachment_rooms_key,
    blocks_key,
    room_bans_key,
    room_info_key,
    room_lock_key,
    room_members_key,
    window_key,
)
from aurora.rooms import RESERVED_PREFIX

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

    from aurora.settings import Settings
    from aurora.tokens import Claims

PUBLIC, PRIVATE, DIRECT = "public", "private", "direct"
VISIBILITIES = (PUBLIC, PRIVATE)  # what a room's creator may choose
MEMBERS_ONLY = (PRIVATE, DIRECT)
OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ROLES = (OWNER, ADMIN, MEMBER)


@dataclass(frozen=True, slots=True)
class Standing:
    """What the mirror says about one user in one room."""

    visibility: str | None  # None: nobody created it (an open public room)
    deleted: bool
    role: str | None  # None: not a member
    banned: bool
    # A direct room only: the other member blocked this user (`aurora.blocks`).
    blocked: bool = False

    @property
    def may_read(self) -> bool:
        """The rule: may this user join, read, search, post and type here?"""
        if self.deleted or self.banned:
            return False
        return self.visibility not in MEMBERS_ONLY or self.role is not None

    @property
    def may_post(self) -> bool:
        """May read, and is not blocked by the other member of a direct room:
        a blocked user still reads the shared history, never adds to it."""
        return self.may_read and not self.blocked

    @property
    def refusal(self) -> str:
        """Why a connection is taken out of the room (the `left` frame's `reason`)."""
        if self.deleted:
            return "deleted"
        if self.banned:
            return "banned"
        return "removed"


def may_moderate(claims_or_user_id: Claims | str, room: str, standing: Standing) -> bool:
    """The one moderation rule: may this user ban, remove, or delete others'
    messages in `room`? Its owner and admins may; so may an operator, in any
    public room (`general` and other open rooms included), never in a private
    or direct one (what is said there is its members' business)."""
    if standing.deleted:
        return False
    if standing.role in (OWNER, ADMIN):
        return True
    return standing.visibility not in MEMBERS_ONLY and operators.is_operator(claims_or_user_id)


def _queue(pipe: Any, room: str, user_id: str) -> None:
    pipe.hmget(room_info_key(room), "visibility", "deleted")
    pipe.hget(room_members_key(room), user_id)
    pipe.sismember(room_bans_key(room), user_id)
    if room.startswith(RESERVED_PREFIX):
        pipe.hkeys(room_members_key(room))  # the other member, whose blocks count


def _read(replies: list[Any], pairs: list[tuple[str, str]]) -> tuple[list[Standing], dict]:
    """The standings, and for direct rooms {index: the other member's id}."""
    found, peers, i = [], {}, 0
    for room, user_id in pairs:
        (visibility, deleted), role, banned = replies[i : i + 3]
        i += 3
        if room.startswith(RESERVED_PREFIX):
            # A direct room is never open, even one the mirror does not know.
            visibility = visibility or DIRECT
            others = [member for member in replies[i] if member != user_id]
            i += 1
            if role is not None and others:
                peers[len(found)] = others[0]
        found.append(Standing(visibility, deleted == "1", role, bool(banned)))
    return found, peers


def _blocked(found: list[Standing], peers: dict, replies: list[Any]) -> list[Standing]:
    for (index, _), blocked in zip(peers.items(), replies, strict=True):
        if blocked:
            found[index] = dataclasses.replace(found[index], blocked=True)
    return found


def standing(client: redis.Redis, room: str, user_id: str) -> Standing:
    """The user's standing in the room, in one round trip (sync; two for a
    direct room, whose other member's blocks are in that member's slot)."""
    with redis_unavailable("Cannot check room membership now, retry"):
        pipe = client.pipeline(transaction=False)
        _queue(pipe, room, user_id)
        found, peers = _read(pipe.execute(), [(room, user_id)])
        if peers:
            (peer,) = peers.values()
            found = _blocked(found, peers, [client.sismember(blocks_key(peer), user_id)])
        return found[0]


async def standings_async(
    client: redis.asyncio.Redis, pairs: list[tuple[str, str]]
) -> list[Standing]:
    """The standing of each (room, user_id), in one round trip (async; a
    second one when direct rooms are among them)."""
    if not pairs:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for room, user_id in pairs:
            _queue(pipe, room, user_id)
        found, peers = _read(await pipe.execute(), pairs)
    if not peers:
        return found
    async with client.pipeline(transaction=False) as pipe:
        for index, peer in peers.items():
            pipe.sismember(blocks_key(peer), pairs[index][1])
        return _blocked(found, peers, await pipe.execute())


def may_access(claims: Claims, room: str) -> bool:
    """Whether the caller may read `room` (REST functions)."""
    from aurora.settings import get_settings

    return standing(redis_client(get_settings().redis_url), room, claims.user_id).may_read


async def may_access_async(claims: Claims, room: str, client: redis.asyncio.Redis) -> bool:
    """Whether the caller may join `room` (the fan-out caches this: `fanout.access`)."""
    with redis_unavailable("Cannot check room membership now, retry"):
        (found,) = await standings_async(client, [(room, claims.user_id)])
    return found.may_read


async def room_in_use_async(client: redis.asyncio.Redis, room: str) -> bool:
    """Whether the room was created, or anybody is a member: a join of any
    other id brings a new room into being (and counts as creating one)."""
    return bool(await client.exists(room_info_key(room), room_members_key(room)))


# KEYS: room info, members, joins stream; ARGV: user id, room, username.
# A public room's join: the member (if not one already) in the mirror and
# queued for MongoDB together. Only for a public room (never private,
# direct or deleted).
_JOIN = """
local info = redis.call('HMGET', KEYS[1], 'visibility', 'deleted')
if (info[1] and info[1] ~= 'public') or info[2] == '1' then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], 'member') == 0 then return 0 end
if KEYS[3] then
  redis.call('XADD', KEYS[3], '*', 'room', ARGV[2], 'user_id', ARGV[1], 'username', ARGV[3])
end
return 1
"""


async def record_join_async(
    client: redis.asyncio.Redis, room: str, user_id: str, username: str
) -> bool:
    """Make the user a member of a public room they joined over the WebSocket
    (the fan-out, which never talks to MongoDB: the drain persists the join)."""
    if not is_cluster(client):
        keys = [room_info_key(room), room_members_key(room), JOINS_STREAM_KEY]
        return bool(await client.eval(_JOIN, len(keys), *keys, user_id, room, username))
    # On a cluster the joins stream is in another slot than the room: the
    # queueing follows the mirror's write. Lost only if this process dies in
    # between; `rebuild_mirror` would then drop the membership, never add one.
    keys = [room_info_key(room), room_members_key(room)]
    if not await client.eval(_JOIN, len(keys), *keys, user_id, room, username):
        return False
    await client.xadd(JOINS_STREAM_KEY, {"room": room, "user_id": user_id, "username": username})
    return True


def check_download(
    url: str, claims: Claims, settings: Settings, s3: Any, client: redis.Redis
) -> None:
    """ForbiddenError unless the caller uploaded the file, or may read a room
    a message carrying it was posted in (`attachments.record_posted_async`),
    and that message was not deleted (`attachments.withdraw`)."""
    from aurora.attachments import KEY_PREFIX, is_withdrawn, key_from_url, url_digest

    key = key_from_url(settings, url, s3)
    if key is None:
        raise ValidationError("Not an attachment URL of this service", code="invalid_attachment")
    with redis_unavailable():
        if is_withdrawn(client, url):  # its message was deleted: nobody, uploader included
            raise ForbiddenError("This file's message was deleted", code="deleted")
    if key.startswith(f"{KEY_PREFIX}/{claims.user_id}/"):
        return
    with redis_unavailable():
        rooms = client.smembers(attachment_rooms_key(url_digest(url)))
    if not any(standing(client, room, claims.user_id).may_read for room in sorted(rooms)):
        raise ForbiddenError("This file was not posted in a room you may read")


# -- the mirror's writes (REST, after MongoDB) -----------------------------------------

# Users one notice may name in `relist`. A room's deletion tells every member,
# in as many notices as it takes; a replica ignores a longer list whole. 200
# ids are ~5 KiB of notice and ~0.1 ms of a replica's loop.
MAX_RELIST = 200
ROOM_LOCK_MS = 5000  # longer than any one change takes; a dead holder's lock lapses
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


@contextlib.contextmanager
def room_lock(client: redis.Redis, room: str, wait_s: float = 3.0) -> Iterator[None]:
    """One membership change of `room` at a time, across function instances:
    MongoDB and the mirror are written in the same order by everyone (else an
    invite and a removal at once could leave MongoDB saying "out" and the
    mirror "in"). UnavailableError if the room stays busy."""
    token, deadline = uuid.uuid4().hex, time.monotonic() + wait_s
    with redis_unavailable("The room is busy, retry"):
        while not client.set(room_lock_key(room), token, nx=True, px=ROOM_LOCK_MS):
            if time.monotonic() > deadline:
                raise UnavailableError("The room is busy, retry")
            time.sleep(0.01)
    try:
        yield
    finally:
        with contextlib.suppress(UnavailableError), redis_unavailable():
            client.eval(_UNLOCK, 1, room_lock_key(room), token)


def notice(room: str, user_id: str | None = None, *, relist: tuple[str, ...] = ()) -> str:
    """A membership notice: the room whose answers changed, the user it was
    about, and `relist`: the users whose list of rooms changed (invited, made
    a member of a new direct room, given a role, removed, banned). Their open
    v1 connections are told to read their rooms again (`fanout.access`)."""
    if len(relist) > MAX_RELIST:
        raise ValueError(f"a notice names at most {MAX_RELIST} users")
    body: dict[str, object] = {"room": room}
    if user_id is not None:
        body["user_id"] = user_id
    if relist:
        body["relist"] = list(relist)
    return json.dumps(body, separators=(",", ":"))


class Mirror:
    """Writes to one room's mirror, each with its notice in one transaction."""

    def __init__(self, client: redis.Redis, room: str) -> None:
        self._client = client
        self.room = room

    def _apply(
        self, user_id: str | None, *writes: Callable[[Any], object], relist: tuple[str, ...] = (),
        changed: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        """`writes` and the notice in one transaction. First the cached lists
        of rooms of `changed` (by default `relist`: the users whose lists
        changed) are dropped, so that the listing their clients make on the
        notice reads the new one."""
        body = notice(self.room, user_id, relist=relist)
        with redis_unavailable("Saved, but the change is not live yet: retry"):
            room_list.lists_changed(self._client, relist if changed is None else changed)
            pipe = self._client.pipeline(transaction=True)  # the room's keys: one slot
            for write in writes:
                write(pipe)
            execute_then_publish(self._client, pipe, MEMBERSHIP_CHANNEL, body)

    def set_info(self, **fields: str) -> None:
        self._apply(None, lambda p: p.hset(room_info_key(self.room), mapping=fields))

    def set_role(self, user_id: str, role: str) -> None:
        """An invitation or a new role: the room appears, or shows the role,
        in the user's list."""
        self._apply(
            user_id,
            lambda p: p.hset(room_members_key(self.room), user_id, role),
            relist=(user_id,),
        )

    def remove(self, user_id: str) -> None:
        self._apply(
            user_id, lambda p: p.hdel(room_members_key(self.room), user_id), relist=(user_id,)
        )

    def ban(self, user_id: str) -> None:
        self._apply(
            user_id,
            lambda p: p.sadd(room_bans_key(self.room), user_id),
            lambda p: p.hdel(room_members_key(self.room), user_id),
            relist=(user_id,),
        )

    def unban(self, user_id: str) -> None:
        self._apply(user_id, lambda p: p.srem(room_bans_key(self.room), user_id))

    def create(self, visibility: str, owner: str, title: str) -> None:
        info = {"visibility": visibility, "owner": owner, "title": title, "deleted": "0"}
        room = self.room
        self._apply(
            owner,
            lambda p: p.delete(room_members_key(room), room_bans_key(room)),
            lambda p: p.hset(room_info_key(room), mapping=info),
            lambda p: p.hset(room_members_key(room), owner, OWNER),
            relist=(owner,),  # the creator's other tabs and devices
        )

    def direct(self, first: str, second: str, *, new_to: tuple[str, ...] = ()) -> None:
        """A direct room of two members (written again as is: idempotent);
        `new_to`: those of them it is new to, who are told to list it."""
        info = {"visibility": DIRECT, "owner": "", "title": "", "deleted": "0"}
        room = self.room
        self._apply(
            None,
            lambda p: p.hset(room_info_key(room), mapping=info),
            lambda p: p.hset(room_members_key(room), mapping={first: MEMBER, second: MEMBER}),
            relist=new_to,
        )

    def delete(self, members: Sequence[str] = ()) -> None:
        """Deleted for good: the id stays taken, nothing of the room keeps
        growing. `members`, whose lists lose the room, are told to read them
        again: the first `MAX_RELIST` with the change, the rest in notices
        of as many each that follow it."""
        room = self.room
        told = [tuple(members[i : i + MAX_RELIST]) for i in range(0, len(members), MAX_RELIST)]
        self._apply(
            None,
            lambda p: p.hset(room_info_key(room), "deleted", "1"),
            lambda p: p.delete(room_members_key(room), room_bans_key(room)),
            lambda p: None if is_cluster(self._client) else p.delete(window_key(room)),
            relist=told[0] if told else (),
            changed=members,
        )
        with redis_unavailable("Saved, but the change is not live yet: retry"):
            if is_cluster(self._client):
                # The window is in the slot of the room's partition: deleted after
                # the transaction; until then it only holds old frames.
                self._client.delete(room_window_key(room))
            # One by one: a cluster pipeline cannot carry PUBLISH, and 10,000
            # members are 49 of them, a few milliseconds.
            for chunk in told[1:]:
                self._client.publish(MEMBERSHIP_CHANNEL, notice(room, relist=chunk))


def rebuild_mirror(db: Database, client: redis.Redis) -> int:
    """Write the mirror again from MongoDB (a Redis that lost its data, or was
    replaced): every created room's info, every membership and ban (blocks:
    `blocks.rebuild_mirror`). Each room is written in one transaction with
    its notice. Returns the rooms written."""
    from aurora import rooms

    members: dict[str, dict[str, str]] = {}
    for doc in db[rooms.MEMBERSHIPS].find({}, {"room": 1, "user_id": 1, "role": 1}):
        members.setdefault(doc["room"], {})[doc["user_id"]] = doc["role"]
    bans: dict[str, set[str]] = {}
    for doc in db[rooms.BANS].find({}, {"room": 1, "user_id": 1}):
        bans.setdefault(doc["room"], set()).add(doc["user_id"])
    infos = {
        doc["_id"]: {
            "visibility": doc["visibility"],
            "owner": doc.get("owner") or "",
            "title": doc.get("title") or "",
            "deleted": "1" if doc.get("deleted") else "0",
        }
        for doc in db[rooms.COLLECTION].find({"visibility": {"$exists": True}})
    }
    written = 0
    for room in set(members) | set(bans) | set(infos):
        with redis_unavailable():
            pipe = client.pipeline(transaction=True)
            pipe.delete(room_members_key(room), room_bans_key(room))
            if room in infos:
                pipe.hset(room_info_key(room), mapping=infos[room])
            if members.get(room) and not (room in infos and infos[room]["deleted"] == "1"):
                pipe.hset(room_members_key(room), mapping=members[room])
            if bans.get(room):
                pipe.sadd(room_bans_key(room), *bans[room])
            execute_then_publish(client, pipe, MEMBERSHIP_CHANNEL, notice(room))
        written += 1
    return written
