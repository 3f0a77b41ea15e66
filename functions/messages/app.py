"""Messages function: a room's history, search in a room, recent rooms.
Wiring only; the rules live in `aurora.history`."""

from typing import Annotated

from aws_lambda_powertools import Logger
from fastapi import Query

from aurora import history
from aurora.backends import database
from aurora.http import User, create_api, error_responses, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="messages")
app = create_api("AuroraChat messages")

# Strings here: `aurora.history` parses them into its own error codes.
Cursor = Annotated[str | None, Query(description="a message id")]
Limit = Annotated[str | None, Query(description="page size (default 50, max 100)")]
ERRORS = error_responses(400, 401, 403, 503)


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
def recent_rooms(user: User, limit: Limit = None) -> dict:
    settings = get_settings()
    size = history.parse_limit(limit, settings)
    return history.recent_rooms(database(settings), size, settings, user)


handler = lambda_handler(app, logger)
