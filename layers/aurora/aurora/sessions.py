"""Sessions: a refresh token per login, rotated on every use, kept in Redis.

A refresh token is `<session id>.<secret>`; Redis keeps only the secret's
SHA-256 under `aurora:session:{sid}` (with the user's id and name) and the
user's session ids under `aurora:user:{user_id}:sessions` (a sorted set by
opening time, at most `max_sessions_per_user`). Every access token
carries its session id, and `aurora.tokens.authenticate()` refuses it once the
session is gone, so ending a session ends its access tokens too.

Rotation follows OAuth 2.0 Security BCP: presenting a refresh token that was
already rotated away means it was copied, so the whole session is revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aurora import tokens
from aurora.errors import AuthenticationError
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis

USER_SESSIONS_KEY = "aurora:user:{user_id}:sessions"
_SESSION_ID = re.compile(r"[0-9a-f]{32}")  # secrets.token_hex(16)
MAX_REFRESH_TOKEN_CHARS = 256

# KEYS[1] session. ARGV: presented hash, new hash, ttl seconds.
# Returns {user_id, username} on success, "reused" after a replay, nil if unknown.
_ROTATE = """
local session = redis.call('HMGET', KEYS[1], 'secret_hash', 'user_id', 'username')
if not session[1] then return nil end
if session[1] ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 'reused'
end
redis.call('HSET', KEYS[1], 'secret_hash', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {session[2], session[3]}
"""


@dataclass(frozen=True)
class SessionTokens:
    access_token: str
    refresh_token: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError("Invalid refresh token", code="invalid_refresh_token")


def open_session(
    client: redis.Redis, settings: Settings, user_id: str, username: str
) -> SessionTokens:
    """A new session for a user who just proved who they are."""
    session_id, secret = secrets.token_hex(16), _new_secret()
    key = tokens.SESSION_KEY.format(sid=session_id)
    index = USER_SESSIONS_KEY.format(user_id=user_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            key, mapping={"secret_hash": _hash(secret), "user_id": user_id, "username": username}
        )
        pipe.expire(key, settings.refresh_ttl_seconds)
        pipe.zadd(index, {session_id: time.time()})
        pipe.expire(index, settings.refresh_ttl_seconds)
        pipe.zcard(index)
        count = pipe.execute()[-1]
    if count > settings.max_sessions_per_user:
        # Bounded memory per user however often they log in: the oldest sessions end.
        oldest = client.zrange(index, 0, count - settings.max_sessions_per_user - 1)
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(*(tokens.SESSION_KEY.format(sid=sid) for sid in oldest))
            pipe.zrem(index, *oldest)
            pipe.execute()
    access = tokens.issue_token(user_id, username, settings, session_id=session_id)
    return SessionTokens(access, f"{session_id}.{secret}")


def refresh(client: redis.Redis, settings: Settings, refresh_token: str) -> SessionTokens:
    """A new access token and a new refresh token; the presented one stops working."""
    session_id, _, secret = refresh_token.partition(".")
    if len(refresh_token) > MAX_REFRESH_TOKEN_CHARS or not _SESSION_ID.fullmatch(session_id):
        raise _invalid_refresh()
    if not secret:
        raise _invalid_refresh()
    new_secret = _new_secret()
    result = client.register_script(_ROTATE)(
        keys=[tokens.SESSION_KEY.format(sid=session_id)],
        args=[_hash(secret), _hash(new_secret), settings.refresh_ttl_seconds],
    )
    if result == "reused":
        raise AuthenticationError(
            "Refresh token reused: the session is revoked", code="refresh_token_reused"
        )
    if not result:
        raise _invalid_refresh()
    user_id, username = result
    client.expire(USER_SESSIONS_KEY.format(user_id=user_id), settings.refresh_ttl_seconds)
    access = tokens.issue_token(user_id, username, settings, session_id=session_id)
    return SessionTokens(access, f"{session_id}.{new_secret}")


def close_session(client: redis.Redis, user_id: str, session_id: str) -> None:
    """End one session: its refresh token and every access token it issued."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(tokens.SESSION_KEY.format(sid=session_id))
        pipe.zrem(USER_SESSIONS_KEY.format(user_id=user_id), session_id)
        pipe.execute()


def close_all_sessions(client: redis.Redis, user_id: str) -> int:
    """End every session of a user; the number ended."""
    index = USER_SESSIONS_KEY.format(user_id=user_id)
    session_ids = client.zrange(index, 0, -1)
    keys = [tokens.SESSION_KEY.format(sid=sid) for sid in session_ids]
    with client.pipeline(transaction=True) as pipe:
        if keys:
            pipe.delete(*keys)
        pipe.delete(index)
        results = pipe.execute()
    return int(results[0]) if keys else 0
