"""User accounts in MongoDB: one document per user, unique by username
(compared case-insensitively through `username_key`), and the one username rule."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aurora.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from pymongo.database import Database

COLLECTION = "users"
BLOCKS = "blocks"  # who blocked whom: `aurora.blocks`

# The one username rule, for registration, login, lookups and token claims:
# ASCII letters, digits and `_ . -` only, so a name holds no control,
# invisible or non-ASCII look-alike character and renders as itself wherever
# it is shown. Always matched whole (`fullmatch`): `$` alone would also
# accept "alice\n".
USERNAME_PATTERN = r"[A-Za-z0-9_.-]{3,32}"
USERNAME_RULE = "3-32 characters: letters, digits, '_', '.', '-'"
_USERNAME = re.compile(USERNAME_PATTERN)


def is_valid_username(username: object) -> bool:
    return isinstance(username, str) and _USERNAME.fullmatch(username) is not None


def check_username(username: object) -> str:
    """`username` if it keeps the rule, else ValidationError `invalid_username`."""
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise ValidationError(f"Username must be {USERNAME_RULE}", code="invalid_username")
    return username


def username_key(username: str) -> str:
    """The form two usernames are compared in: NFKC-normalised, case-folded."""
    return unicodedata.normalize("NFKC", username).casefold()


def ensure_indexes(db: Database) -> None:
    db[COLLECTION].create_index("username_key", unique=True, name="username_key_unique")
    # Who blocked whom (`aurora.blocks`): one entry per pair.
    db[BLOCKS].create_index(
        [("user_id", 1), ("blocked_id", 1)], unique=True, name="user_blocked", background=True
    )


def create_user(db: Database, username: str, password_hash: str) -> str:
    from pymongo.errors import DuplicateKeyError

    doc = {
        "username": username,
        "username_key": username_key(username),
        "password_hash": password_hash,
        "created_at": datetime.now(UTC),
    }
    try:
        result = db[COLLECTION].insert_one(doc)
    except DuplicateKeyError:
        raise ConflictError("User exists", code="user_exists") from None
    return str(result.inserted_id)


def find_user(db: Database, username: str) -> dict[str, Any] | None:
    """The account named `username` (in any case); None if there is none or
    the name breaks the rule (an account stored before the rule was whole)."""
    if not is_valid_username(username):
        return None
    return db[COLLECTION].find_one({"username_key": username_key(username)})


def find_user_by_id(db: Database, user_id: str) -> dict[str, Any] | None:
    from bson import ObjectId
    from bson.errors import InvalidId

    try:
        oid = ObjectId(user_id)
    except (InvalidId, TypeError):
        return None
    return db[COLLECTION].find_one({"_id": oid})


def set_password_hash(db: Database, user_id: Any, password_hash: str) -> None:
    db[COLLECTION].update_one(
        {"_id": user_id},
        {"$set": {"password_hash": password_hash, "password_changed_at": datetime.now(UTC)}},
    )
