"""Rooms people own: creating, listing, changing and deleting rooms, members
and bans (the rooms routes of the messages function).

Every change is checked by the caller's role as MongoDB records it (never by
what the client claims), written to MongoDB first, then to the Redis mirror
with a notice (`membership.Mirror`), so every fan-out replica applies it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic

from aurora import audit, blocks, membership, operators, room_list, rooms, throttling, users
from aurora.backends import is_cluster, room_window_key
from aurora.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from aurora.keyspace import room_members_key, window_key
from aurora.membership import ADMIN, DIRECT, MEMBER, MEMBERS_ONLY, OWNER, PUBLIC, Mirror

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

    from aurora.settings import Settings
    from aurora.tokens import Claims

TITLE_MAX_CHARS = 100
_CURSOR = re.compile(r"([0-9]{20}-[0-9]{20})~(" + rooms.ROOM_PATTERN[1:-1] + ")", re.ASCII)

Title = Annotated[
    str, pydantic.StringConstraints(max_length=TITLE_MAX_CHARS, strip_whitespace=True)
]


class NewRoom(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    room: str
    visibility: Literal["public", "private"] = PUBLIC
    title: Title | None = None


class RoomChange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    title: Title | None = None
    visibility: Literal["public", "private"] | None = None


class NewDirect(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    username: str = pydantic.Field(max_length=64)


class MemberChange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    role: Literal["member", "admin", "owner"] = MEMBER


def _now() -> datetime:
    return datetime.now(UTC)


def check_new_id(room: object) -> str:
    room = rooms.check_room(room)
    if room.startswith(rooms.RESERVED_PREFIX):
        raise ValidationError(
            f"Room ids starting with {rooms.RESERVED_PREFIX!r} are reserved", code="reserved_room"
        )
    if room == rooms.DEFAULT_ROOM:
        raise ConflictError("That room id is taken", code="room_exists")
    return room


def _taken(db: Database, client: redis.Redis, room: str) -> bool:
    """Created, deleted, or used: a public room that has had a message (stored,
    or still in Redis) or a member. Claiming it would take it from its users."""
    if db[rooms.COLLECTION].find_one({"_id": room}, {"_id": 1}) is not None:
        return True
    if db[rooms.MEMBERSHIPS].find_one({"room": room}, {"_id": 1}) is not None:
        return True
    window = room_window_key(room) if is_cluster(client) else window_key(room)
    return bool(client.exists(window, room_members_key(room)))


def create(
    db: Database, client: redis.Redis, settings: Settings, claims: Claims, body: NewRoom
) -> dict[str, Any]:
    from pymongo.errors import DuplicateKeyError

    room = check_new_id(body.room)
    throttling.take_room_creation(client, settings, claims.user_id)
    if _taken(db, client, room):
        raise ConflictError("That room id is taken", code="room_exists")
    now, title = _now(), body.title or ""
    doc = {
        "_id": room, "visibility": body.visibility, "title": title, "owner": claims.user_id,
        "created_at": now, "deleted": False, "last": rooms.NO_ACTIVITY, "last_ts": 0,
    }  # fmt: skip
    try:  # the unique _id decides a race between two creators
        db[rooms.COLLECTION].insert_one(doc)
    except DuplicateKeyError:
        raise ConflictError("That room id is taken", code="room_exists") from None
    _upsert_member(db, room, claims.user_id, claims.username, OWNER, activity=rooms.NO_ACTIVITY)
    Mirror(client, room).create(body.visibility, claims.user_id, title)
    audit.record(db, claims, "room.create", room, visibility=body.visibility)
    return {"room": rooms.view(doc, room, OWNER)}


def _upsert_member(
    db: Database, room: str, user_id: str, username: str, role: str, *, activity: str | None = None
) -> bool:
    """Set a role; whether the membership is new. A new one also gets the
    room's `last` as its activity when given (else it is read through its
    room until the drain copies the room's key: `aurora.room_list`)."""
    copied = room_list.UNCOPIED if activity is None else room_list.activity_of(activity, room)
    fresh: dict[str, Any] = {"joined_at": _now(), "activity": copied}
    result = db[rooms.MEMBERSHIPS].update_one(
        {"room": room, "user_id": user_id},
        {"$set": {"role": role, "username": username}, "$setOnInsert": fresh},
        upsert=True,
    )
    return result.upserted_id is not None


def open_direct(
    db: Database, client: redis.Redis, claims: Claims, body: NewDirect
) -> dict[str, Any]:
    """The caller's direct room with `body.username`, made on first ask."""
    user_id, name = _target(db, body.username)
    if user_id == claims.user_id:
        raise ValidationError("A direct room is with someone else", code="self_direct")
    if blocks.blocks(db, user_id, claims.user_id):
        raise ForbiddenError("This user does not accept direct messages from you")
    room = rooms.direct_room(claims.user_id, user_id)
    doc = _upsert_direct(db, room, claims.user_id, user_id)
    last = doc.get("last", rooms.NO_ACTIVITY)
    # Both are told to list it, on every device, the first time only: asking
    # again tells nobody anything (it cannot be used to make the other's
    # clients re-read their rooms over and over).
    new_to = tuple(
        member
        for member, member_name in ((claims.user_id, claims.username), (user_id, name))
        if _upsert_member(db, room, member, member_name, MEMBER, activity=last)
    )
    Mirror(client, room).direct(claims.user_id, user_id, new_to=new_to)
    answer = rooms.view(doc, room, MEMBER)
    answer["with"] = {"user": name, "user_id": user_id}
    return {"room": answer}


def _upsert_direct(db: Database, room: str, first: str, second: str) -> dict[str, Any]:
    from pymongo import ReturnDocument
    from pymongo.errors import DuplicateKeyError

    fresh = {"visibility": DIRECT, "title": "", "owner": None, "created_at": _now(),
             "deleted": False, "last": rooms.NO_ACTIVITY, "last_ts": 0,
             "members": sorted((first, second))}  # fmt: skip
    for _ in range(2):  # two first asks at once: one upsert loses, then finds it
        try:
            return db[rooms.COLLECTION].find_one_and_update(
                {"_id": room}, {"$setOnInsert": fresh}, upsert=True,
                return_document=ReturnDocument.AFTER,
            )  # fmt: skip
        except DuplicateKeyError:
            continue
    return db[rooms.COLLECTION].find_one({"_id": room})


# -- reading ------------------------------------------------------------------------


def parse_cursor(raw: str | None) -> tuple[str, str] | None:
    if raw is None:
        return None
    match = _CURSOR.fullmatch(raw) if len(raw) <= 200 else None
    if match is None:
        raise ValidationError("Invalid cursor", code="invalid_cursor")
    return match.group(1), match.group(2)


def listing(
    db: Database, claims: Claims, *, scope: str | None, cursor: str | None, limit: int,
    max_time_ms: int, client: redis.Redis | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The caller's rooms (scope None), or public rooms (scope "public"), newest
    activity first: {"rooms": [...], "next_cursor"}. `client` keeps the hint
    that bounds the first page's read (`aurora.room_list`)."""
    if scope not in (None, "public"):
        raise ValidationError("scope must be 'public' or absent", code="invalid_scope")
    after = parse_cursor(cursor)
    if scope == "public":
        return _public(db, claims, after, limit, max_time_ms)
    before = None if after is None else room_list.activity_of(*after)
    rows, next_cursor = room_list.page(db, client, claims.user_id, before=before, limit=limit,
                                       max_time_ms=max_time_ms)  # fmt: skip
    # A room being deleted may keep memberships for a moment: never listed.
    page = [rooms.view(r["doc"], r["room"], r["role"]) for r in rows
            if not r["doc"].get("deleted")]  # fmt: skip
    _name_peers(db, claims, page)
    return {"rooms": page, "next_cursor": next_cursor}


def _public(
    db: Database, claims: Claims, after: tuple[str, str] | None, limit: int, max_time_ms: int
) -> dict[str, Any]:
    query: dict[str, Any] = {"deleted": {"$ne": True}, "visibility": {"$nin": list(MEMBERS_ONLY)}}
    if after is not None:
        last, room = after
        query["$or"] = [{"last": {"$lt": last}}, {"last": last, "_id": {"$gt": room}}]
    docs = list(
        db[rooms.COLLECTION]
        .find(query, sort=[("last", -1), ("_id", 1)], limit=limit + 1)
        .max_time_ms(max_time_ms)
    )
    more, docs = len(docs) > limit, docs[:limit]
    roles: dict[str, str] = {}
    if docs:
        mine = db[rooms.MEMBERSHIPS].find(
            {"user_id": claims.user_id, "room": {"$in": [d["_id"] for d in docs]}}
        )
        roles = {doc["room"]: doc["role"] for doc in mine}
    page = [rooms.view(doc, doc["_id"], roles.get(doc["_id"])) for doc in docs]
    last_doc = docs[-1] if more else None
    next_cursor = (
        None if last_doc is None else f"{last_doc.get('last', rooms.NO_ACTIVITY)}~{last_doc['_id']}"
    )
    return {"rooms": page, "next_cursor": next_cursor}


def _name_peers(db: Database, claims: Claims, page: list[dict[str, Any]]) -> None:
    """Each direct room's other person as `with: {user, user_id}`, so a client
    names the room after them (one query for the page)."""
    direct = [entry["room"] for entry in page if entry["visibility"] == DIRECT]
    if not direct:
        return
    others = db[rooms.MEMBERSHIPS].find(
        {"room": {"$in": direct}, "user_id": {"$ne": claims.user_id}},
        {"room": 1, "user_id": 1, "username": 1},
    )
    peers = {m["room"]: {"user": m.get("username"), "user_id": m["user_id"]} for m in others}
    for entry in page:
        if entry["room"] in peers:
            entry["with"] = peers[entry["room"]]


def details(db: Database, claims: Claims, room: str) -> dict[str, Any]:
    """A room the caller may read; for a private room, its members with roles."""
    room = _readable(claims, room)
    doc = db[rooms.COLLECTION].find_one({"_id": room})
    mine = _membership(db, room, claims.user_id)
    answer = rooms.view(doc, room, mine)
    if doc is not None and doc.get("visibility") is not None:
        answer["owner"] = doc.get("owner")
        answer["created_at"] = doc["created_at"].isoformat() if doc.get("created_at") else None
    if answer["visibility"] in MEMBERS_ONLY:
        answer["members"] = [
            {"user": m.get("username"), "user_id": m["user_id"], "role": m["role"]}
            for m in db[rooms.MEMBERSHIPS].find({"room": room}, sort=[("joined_at", 1)])
        ]
    _name_peers(db, claims, [answer])
    return {"room": answer}


def _readable(claims: Claims, room: object) -> str:
    room = rooms.check_room(room)
    if not membership.may_access(claims, room):
        raise ForbiddenError("Not a member of this room")
    return room


def _membership(db: Database, room: str, user_id: str) -> str | None:
    doc = db[rooms.MEMBERSHIPS].find_one({"room": room, "user_id": user_id}, {"role": 1})
    return None if doc is None else doc["role"]


def _managed(db: Database, claims: Claims, room: object, *roles: str) -> tuple[str, str, dict]:
    """(room, caller's role, room document) when the caller holds one of `roles`
    in a created, undeleted room; 403 / 404 otherwise."""
    room = rooms.check_room(room)
    doc = db[rooms.COLLECTION].find_one({"_id": room})
    role = _membership(db, room, claims.user_id)
    if doc is None or doc.get("visibility") is None or doc.get("deleted"):
        # An open public room has no owner: nobody administers it.
        raise ForbiddenError("Only a room's owner or admins may do this")
    if role not in roles:
        raise ForbiddenError(f"Only the room's {' or '.join(roles)} may do this")
    return room, role, doc


# -- changing -------------------------------------------------------------------------


def _one_change_at_a_time(change: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A membership change of one room (checks, MongoDB, mirror) under the
    room's lock: concurrent changes land in MongoDB and the mirror alike."""

    @functools.wraps(change)
    def serialized(db: Database, client: redis.Redis, claims: Claims, room: str, *rest: Any):
        with membership.room_lock(client, rooms.check_room(room)):
            return change(db, client, claims, room, *rest)

    return serialized


@_one_change_at_a_time
def change(
    db: Database, client: redis.Redis, claims: Claims, room: str, body: RoomChange
) -> dict[str, Any]:
    room, role, doc = _managed(db, claims, room, OWNER, ADMIN)
    update = {k: v for k, v in body.model_dump().items() if v is not None}
    if update:
        db[rooms.COLLECTION].update_one({"_id": room}, {"$set": update})
        doc |= update
        Mirror(client, room).set_info(**update)
        audit.record(db, claims, "room.change", room, **update)
    return {"room": rooms.view(doc, room, role)}


@_one_change_at_a_time
def delete(db: Database, client: redis.Redis, claims: Claims, room: str) -> dict[str, Any]:
    room, _, _ = _managed(db, claims, room, OWNER)
    # Whose lists lose the room (read before the memberships go): every
    # member's open clients are told, so their sidebars drop it at once.
    # (A cursor, not `distinct`: its answer is one document, 16 MiB at most.)
    found = db[rooms.MEMBERSHIPS].find({"room": room}, {"user_id": 1, "_id": 0})
    members = [doc["user_id"] for doc in found]
    db[rooms.COLLECTION].update_one(
        {"_id": room}, {"$set": {"deleted": True, "deleted_at": _now()}}
    )
    db[rooms.MEMBERSHIPS].delete_many({"room": room})
    db[rooms.BANS].delete_many({"room": room})
    Mirror(client, room).delete(members)
    audit.record(db, claims, "room.delete", room)
    return {"ok": True}


def _target(db: Database, username: str) -> tuple[str, str]:
    user = users.find_user(db, username) if users.is_valid_username(username) else None
    if user is None:
        raise NotFoundError("No such user", code="user_not_found")
    return str(user["_id"]), user["username"]


@_one_change_at_a_time
def put_member(
    db: Database, client: redis.Redis, claims: Claims, room: str, username: str, body: MemberChange
) -> dict[str, Any]:
    """Invite `username`, or change their role; role "owner" hands the room over."""
    room, role, _ = _managed(db, claims, room, OWNER, ADMIN)
    user_id, name = _target(db, username)
    current = _membership(db, room, user_id)
    if (body.role in (OWNER, ADMIN) or current in (OWNER, ADMIN)) and role != OWNER:
        raise ForbiddenError("Only the owner makes, changes or unmakes admins")
    if db[rooms.BANS].find_one({"room": room, "user_id": user_id}) is not None:
        raise ConflictError("That user is banned from this room", code="user_banned")
    mirror = Mirror(client, room)
    if user_id == claims.user_id and role == OWNER and body.role != OWNER:
        raise ConflictError("Hand the room over to someone else first", code="owner_must_hand_over")
    _upsert_member(db, room, user_id, name, body.role)
    if body.role == OWNER and user_id != claims.user_id:
        db[rooms.COLLECTION].update_one({"_id": room}, {"$set": {"owner": user_id}})
        _upsert_member(db, room, claims.user_id, claims.username, ADMIN)
        mirror.set_info(owner=user_id)
        mirror.set_role(claims.user_id, ADMIN)
    mirror.set_role(user_id, body.role)
    audit.record(db, claims, "member.put", room, target=(user_id, name), role=body.role)
    return {"member": {"user": name, "user_id": user_id, "role": body.role}}


def _moderated(db: Database, claims: Claims, room: object) -> tuple[str, str | None]:
    """(room, caller's role) when the caller may moderate the room
    (`membership.may_moderate`: its owner or admins, or an operator in a
    public room, `general` included), judged from MongoDB; 403 otherwise."""
    room = rooms.check_room(room)
    doc = db[rooms.COLLECTION].find_one({"_id": room}, {"visibility": 1, "deleted": 1})
    role = _membership(db, room, claims.user_id)
    visibility = None if doc is None else doc.get("visibility")
    if visibility is None and room.startswith(rooms.RESERVED_PREFIX):
        visibility = DIRECT
    deleted = bool(doc and doc.get("deleted"))
    standing = membership.Standing(visibility, deleted, role, banned=False)
    if not membership.may_moderate(claims, room, standing):
        raise ForbiddenError("Only the room's owner or admins, or an operator, may do this")
    return room, role


def _outranks(claims: Claims, role: str | None, target_id: str, target_role: str | None) -> bool:
    """Whether a moderator may remove or ban this target: nobody the owner, nor
    themselves; admins only the owner or an operator; operators nobody an operator."""
    if target_role == OWNER or target_id == claims.user_id:
        return False
    if operators.is_operator(target_id):
        return False
    if target_role == ADMIN:
        return role == OWNER or operators.is_operator(claims)
    return True


@_one_change_at_a_time
def remove_member(
    db: Database, client: redis.Redis, claims: Claims, room: str, username: str
) -> dict[str, Any]:
    """Remove `username` (owner, admins, operators in public rooms), or leave (yourself)."""
    room = rooms.check_room(room)
    user_id, name = _target(db, username)
    if user_id == claims.user_id:
        current = _membership(db, room, user_id)
        if current is None:
            raise NotFoundError("Not a member of this room", code="not_a_member")
        if current == OWNER:
            raise ConflictError("Hand the room over before leaving", code="owner_must_hand_over")
    else:
        room, role = _moderated(db, claims, room)
        current = _membership(db, room, user_id)
        if current is None:
            raise NotFoundError("Not a member of this room", code="not_a_member")
        if not _outranks(claims, role, user_id, current):
            raise ForbiddenError("Only the owner removes admins; nobody removes the owner")
    db[rooms.MEMBERSHIPS].delete_one({"room": room, "user_id": user_id})
    Mirror(client, room).remove(user_id)
    if user_id != claims.user_id:
        audit.record(db, claims, "member.remove", room, target=(user_id, name))
    return {"ok": True}


@_one_change_at_a_time
def ban(
    db: Database, client: redis.Redis, claims: Claims, room: str, username: str
) -> dict[str, Any]:
    room, role = _moderated(db, claims, room)
    user_id, name = _target(db, username)
    current = _membership(db, room, user_id)
    if not _outranks(claims, role, user_id, current):
        raise ForbiddenError("Only the owner bans admins; nobody bans the owner")
    db[rooms.BANS].update_one(
        {"room": room, "user_id": user_id},
        {"$set": {"username": name}, "$setOnInsert": {"banned_at": _now(), "by": claims.user_id}},
        upsert=True,
    )
    db[rooms.MEMBERSHIPS].delete_one({"room": room, "user_id": user_id})
    Mirror(client, room).ban(user_id)
    audit.record(db, claims, "ban.put", room, target=(user_id, name))
    return {"ok": True}


@_one_change_at_a_time
def unban(
    db: Database, client: redis.Redis, claims: Claims, room: str, username: str
) -> dict[str, Any]:
    room, _ = _moderated(db, claims, room)
    user_id, name = _target(db, username)
    db[rooms.BANS].delete_one({"room": room, "user_id": user_id})
    Mirror(client, room).unban(user_id)
    audit.record(db, claims, "ban.delete", room, target=(user_id, name))
    return {"ok": True}
