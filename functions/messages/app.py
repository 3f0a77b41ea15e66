"""Messages function: rooms (create, list, details, change, delete, members,
bans), direct rooms, blocks, presence, the audit log, a room's history, search
in a room. Wiring only; the rules live in `aurora.room_admin`, `aurora.blocks`,
`aurora.presence`, `aurora.audit` and `aurora.history`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Body, Query

from aurora import audit, blocks, history, presence, room_admin
from aurora.backends import database, redis_client
from aurora.http import User, create_api, error_responses, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="messages")
app = create_api("AuroraChat messages")

# Strings here: `aurora.history` parses them into its own error codes.
Cursor = Annotated[str | None, Query(description="a message id")]
Limit = Annotated[str | None, Query(description="page size (default 50, max 100)")]
ERRORS = error_responses(400, 401, 403, 503)
CHANGES = error_responses(400, 401, 403, 404, 409, 503)


def _stores():
    settings = get_settings()
    return database(settings), redis_client(settings.redis_url)


@app.get("/api/rooms/{room}/messages", responses=ERRORS)
def room_messages(
    room: str, user: User, before: Cursor = None, after: Cursor = None, limit: Limit = None
) -> dict:
    settings = get_settings()
    room = history.check_access(user, room)
    size = history.parse_limit(limit, settings)
    return history.page(database(settings), room, settings, before=before, after=after, limit=size)


@app.get("/api/search", responses=ERRORS)
def search(
    user: User,
    room: str | None = None,
    q: Annotated[str | None, Query(description="1-100 characters, matched literally")] = None,
    before: Cursor = None,
    limit: Limit = None,
) -> dict:
    settings = get_settings()
    room = history.check_access(user, room)
    size = history.parse_limit(limit, settings)
    return history.search(database(settings), room, q, settings, before=before, limit=size)


@app.get("/api/rooms", responses=ERRORS)
def list_rooms(
    user: User,
    limit: Limit = None,
    scope: Annotated[str | None, Query(description="'public': browse public rooms")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict:
    settings = get_settings()
    size = history.parse_limit(limit, settings)
    with history.bounded():
        return room_admin.listing(
            database(settings), user, scope=scope, cursor=cursor, limit=size,
            max_time_ms=settings.history_query_max_ms,
        )  # fmt: skip


@app.post("/api/rooms", status_code=201, responses=error_responses(400, 401, 409, 429, 503))
def create_room(body: room_admin.NewRoom, user: User) -> dict:
    db, cache = _stores()
    created = room_admin.create(db, cache, get_settings(), user, body)
    logger.info("room created", extra={"user_id": user.user_id, "room": body.room})
    return created


@app.post("/api/dms", responses=error_responses(400, 401, 404, 503))
def open_direct(body: room_admin.NewDirect, user: User) -> dict:
    return room_admin.open_direct(*_stores(), user, body)


@app.get("/api/rooms/{room}", responses=ERRORS)
def room_details(room: str, user: User) -> dict:
    return room_admin.details(_stores()[0], user, room)


@app.patch("/api/rooms/{room}", responses=CHANGES)
def change_room(room: str, body: room_admin.RoomChange, user: User) -> dict:
    return room_admin.change(*_stores(), user, room, body)


@app.delete("/api/rooms/{room}", responses=CHANGES)
def delete_room(room: str, user: User) -> dict:
    return room_admin.delete(*_stores(), user, room)


@app.put("/api/rooms/{room}/members/{username}", responses=CHANGES)
def put_member(
    room: str, username: str, user: User, body: room_admin.MemberChange | None = Body(None)
) -> dict:
    change = body or room_admin.MemberChange()
    return room_admin.put_member(*_stores(), user, room, username, change)


@app.delete("/api/rooms/{room}/members/{username}", responses=CHANGES)
def remove_member(room: str, username: str, user: User) -> dict:
    return room_admin.remove_member(*_stores(), user, room, username)


@app.put("/api/rooms/{room}/bans/{username}", responses=CHANGES)
def ban(room: str, username: str, user: User) -> dict:
    return room_admin.ban(*_stores(), user, room, username)


@app.delete("/api/rooms/{room}/bans/{username}", responses=CHANGES)
def unban(room: str, username: str, user: User) -> dict:
    return room_admin.unban(*_stores(), user, room, username)


@app.get("/api/rooms/{room}/presence", responses=ERRORS)
def room_presence(
    room: str,
    user: User,
    limit: Limit = None,
    cursor: Annotated[str | None, Query(description="next of the previous page")] = None,
) -> dict:
    settings = get_settings()
    room = history.check_access(user, room)
    size = history.parse_limit(limit, settings)
    return presence.page(redis_client(settings.redis_url), room, cursor, size)


@app.get("/api/blocks", responses=error_responses(401, 503))
def list_blocks(user: User) -> dict:
    return blocks.listing(_stores()[0], get_settings(), user)


@app.put("/api/blocks/{username}", responses=error_responses(400, 401, 404, 409, 503))
def block(username: str, user: User) -> dict:
    return blocks.block(*_stores(), get_settings(), user, username)


@app.delete("/api/blocks/{username}", responses=error_responses(400, 401, 404, 503))
def unblock(username: str, user: User) -> dict:
    return blocks.unblock(*_stores(), user, username)


@app.get("/api/audit", responses=ERRORS)
def audit_log(
    user: User,
    limit: Limit = None,
    room: Annotated[str | None, Query(description="only this room's entries")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict:
    settings = get_settings()
    size = history.parse_limit(limit, settings)
    with history.bounded():
        return audit.page(
            database(settings), user, room=room, cursor=cursor, limit=size,
            max_time_ms=settings.history_query_max_ms,
        )  # fmt: skip


handler = lambda_handler(app, logger)
