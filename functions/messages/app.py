"""Messages function: rooms (create, list, details, change, delete, members,
bans), direct rooms, blocks, presence, the audit log, a room's history, search
in a room, changing a message (edit, delete, reactions) and read cursors.
Wiring only; the rules live in `aurora.room_admin`, `aurora.blocks`,
`aurora.presence`, `aurora.audit`, `aurora.history`, `aurora.changes` and
`aurora.receipts`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Body, Query

from aurora import audit, blocks, changes, history, presence, receipts, room_admin
from aurora.backends import database, layout, redis_client
from aurora.emoji import check_emoji
from aurora.http import Reader, User, create_api, error_responses, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="messages")
app = create_api("AuroraChat messages")

# Strings here: `aurora.history` parses them into its own error codes.
Cursor = Annotated[str | None, Query(description="a message id")]
Limit = Annotated[str | None, Query(description="page size (default 50, max 100)")]
ERRORS = error_responses(400, 401, 403, 503)
READS = error_responses(400, 401, 403, 429, 503)
CHANGES = error_responses(400, 401, 403, 404, 409, 503)
MESSAGE_CHANGES = error_responses(400, 401, 403, 404, 409, 429, 503)


def _stores():
    settings = get_settings()
    return database(settings), redis_client(settings.redis_url)


@app.get("/api/rooms/{room}/messages", responses=READS)
def room_messages(
    room: str, user: Reader, before: Cursor = None, after: Cursor = None, limit: Limit = None
) -> dict:
    settings = get_settings()
    room = history.check_access(user, room)
    size = history.parse_limit(limit, settings)
    return history.page(
        database(settings), room, settings, before=before, after=after, limit=size,
        viewer=user.user_id,
    )  # fmt: skip


@app.patch("/api/rooms/{room}/messages/{message_id}", responses=MESSAGE_CHANGES)
def edit_message(room: str, message_id: str, body: changes.EditRequest, user: User) -> dict:
    settings = get_settings()
    changes.check_edit_text(body.text, settings.max_text_chars)
    change = changes.Change(changes.EDIT, room, message_id, text=body.text)
    return changes.over_rest(*_stores(), settings, user, change)


@app.delete("/api/rooms/{room}/messages/{message_id}", responses=MESSAGE_CHANGES)
def delete_message(room: str, message_id: str, user: User) -> dict:
    change = changes.Change(changes.DELETE, room, message_id)
    return changes.over_rest(*_stores(), get_settings(), user, change)


@app.put("/api/rooms/{room}/messages/{message_id}/reactions/{emoji}", responses=MESSAGE_CHANGES)
def add_reaction(room: str, message_id: str, emoji: str, user: User) -> dict:
    change = changes.Change(changes.REACT, room, message_id, emoji=check_emoji(emoji), on=True)
    return changes.over_rest(*_stores(), get_settings(), user, change)


@app.delete("/api/rooms/{room}/messages/{message_id}/reactions/{emoji}", responses=MESSAGE_CHANGES)
def remove_reaction(room: str, message_id: str, emoji: str, user: User) -> dict:
    change = changes.Change(changes.REACT, room, message_id, emoji=check_emoji(emoji), on=False)
    return changes.over_rest(*_stores(), get_settings(), user, change)


@app.post("/api/rooms/{room}/read", responses=MESSAGE_CHANGES)
def mark_read(room: str, body: receipts.ReadRequest, user: User) -> dict:
    return receipts.read_over_rest(*_stores(), get_settings(), user, room, body.id)


@app.get("/api/rooms/{room}/receipts", responses=CHANGES)
def read_by(room: str, user: User) -> dict:
    room = history.check_access(user, room)
    return {"receipts": receipts.read_by(_stores()[1], layout(get_settings()), room)}


@app.get("/api/search", responses=READS)
def search(
    user: Reader,
    room: str | None = None,
    q: Annotated[str | None, Query(description="1-100 characters, matched literally")] = None,
    before: Cursor = None,
    limit: Limit = None,
) -> dict:
    settings = get_settings()
    room = history.check_access(user, room)
    size = history.parse_limit(limit, settings)
    return history.search(
        database(settings), room, q, settings, before=before, limit=size, viewer=user.user_id
    )


@app.get("/api/rooms", responses=READS)
def list_rooms(
    user: Reader,
    limit: Limit = None,
    scope: Annotated[str | None, Query(description="'public': browse public rooms")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict:
    settings = get_settings()
    size = history.parse_limit(limit, settings)
    with history.bounded():
        client = redis_client(settings.redis_url)
        listed = room_admin.listing(
            database(settings), user, scope=scope, cursor=cursor, limit=size,
            max_time_ms=settings.history_query_max_ms, client=client,
        )  # fmt: skip
    return receipts.with_unread(client, layout(settings), user, listed)


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
    return presence.page(redis_client(settings.redis_url), layout(settings), room, cursor, size)


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
