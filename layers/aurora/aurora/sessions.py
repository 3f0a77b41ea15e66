"""Sessions: a refresh token per login, rotated on every use, kept in Redis.

A refresh token is `<session id>.<secret>`; Redis keeps only the secret's
SHA-256 in the session's hash (with the user's id and name) and the user's
session ids in a sorted set by opening time, at most `max_sessions_per_user`
(`aurora.keyspace`). Every access token carries its session id, and
`aurora.tokens.authenticate()` refuses it once the session is gone, so ending
a session ends its access tokens too.

Rotation follows OAuth 2.0 Security BCP: presenting a refresh token that was
already rotated away means it was copied, so the whole session is revoked.

Every revocation (logout, logout everywhere, password change, a replayed
refresh token, the session limit) publishes a notice on `REVOCATIONS_CHANNEL`
in the same transaction as its write, so fan-out replicas close the open
WebSockets it ends. A notice only names the user: replicas re-check that user's connections
against the keys above, which stay the one source of truth.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aurora import tokens, users
from aurora.backends import execute_then_publish, is_cluster
from aurora.errors import AuthenticationError
from aurora.keyspace import REVOCATIONS_CHANNEL, revoked_key, session_key, user_sessions_key
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis

_SESSION_ID = re.compile(r"[0-9a-f]{32}")  # secrets.token_hex(16)
MAX_REFRESH_TOKEN_CHARS = 256

# KEYS[1] session. ARGV: presented hash, new hash, ttl seconds, revocations channel.
# Returns {user_id, username} on success, "reused" after a replay, nil if unknown.
_ROTATE = """
local session = redis.call('HMGET', KEYS[1], 'secret_hash', 'user_id', 'username')
if not session[1] then return nil end
if session[1] ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[4],
    cjson.encode({user_id = session[2], reason = 'refresh_token_reused'}))
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


def revocation_notice(user_id: str, reason: str) -> str:
    """The message on REVOCATIONS_CHANNEL: whose connections to re-check, and why."""
    return json.dumps({"user_id": user_id, "reason": reason})


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError("Invalid refresh token", code="invalid_refresh_token")


def open_session(
    client: redis.Redis, settings: Settings, user_id: str, username: str
) -> SessionTokens:
    """A new session for a user who just proved who they are."""
    session_id, secret = secrets.token_hex(16), _new_secret()
    key = session_key(session_id)
    index = user_sessions_key(user_id)
    with _writes(client) as pipe:
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
        with _writes(client) as pipe:
            for sid in oldest:
                pipe.delete(session_key(sid))
            pipe.zrem(index, *oldest)
            _then_notice(client, pipe, revocation_notice(user_id, "session_limit"))
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
        keys=[session_key(session_id)],
        args=[_hash(secret), _hash(new_secret), settings.refresh_ttl_seconds, REVOCATIONS_CHANNEL],
    )
    if result == "reused":
        raise AuthenticationError(
            "Refresh token reused: the session is revoked", code="refresh_token_reused"
        )
    if not result:
        raise _invalid_refresh()
    user_id, username = result
    if not users.is_valid_username(username):
        # A session opened before the username rule was whole: its tokens
        # would be refused, so it ends here.
        client.delete(session_key(session_id))
        raise _invalid_refresh()
    client.expire(user_sessions_key(user_id), settings.refresh_ttl_seconds)
    access = tokens.issue_token(user_id, username, settings, session_id=session_id)
    return SessionTokens(access, f"{session_id}.{new_secret}")


def end_session(client: redis.Redis, settings: Settings, claims: tokens.Claims) -> None:
    """Logout: refuse this access token until it expires, end its session (its
    refresh token and every access token it issued) and tell the replicas, in
    one transaction."""
    with _writes(client) as pipe:
        _revoke_access_token(pipe, settings, claims)
        if claims.session_id:
            pipe.delete(session_key(claims.session_id))
            pipe.zrem(user_sessions_key(claims.user_id), claims.session_id)
        _then_notice(client, pipe, revocation_notice(claims.user_id, "logout"))


def end_all_sessions(
    client: redis.Redis,
    settings: Settings,
    claims: tokens.Claims,
    reason: str = "password_change",
) -> int:
    """Password change, or logout everywhere (`reason` names which): end every
    session of the user and refuse the caller's access token, then tell the
    replicas, in one transaction; the number of sessions ended. The index is
    WATCHed: a session opened between reading it and the deletes makes the
    transaction retry instead of surviving it."""
    index = user_sessions_key(claims.user_id)

    def end_all(pipe: redis.client.Pipeline) -> int:
        session_ids = pipe.zrange(index, 0, -1)  # WATCHed: read before MULTI
        pipe.multi()
        if session_ids:
            pipe.delete(*(session_key(sid) for sid in session_ids))
        pipe.delete(index)
        _revoke_access_token(pipe, settings, claims)
        pipe.publish(REVOCATIONS_CHANNEL, revocation_notice(claims.user_id, reason))
        return len(session_ids)

    if is_cluster(client):
        # The user's sessions are in many slots: no transaction can hold
        # them. The writes, then the notice; a session opened meanwhile
        # survives this call (the next one ends it).
        session_ids = client.zrange(index, 0, -1)
        with client.pipeline(transaction=False) as pipe:
            for sid in session_ids:
                pipe.delete(session_key(sid))
            pipe.delete(index)
            _revoke_access_token(pipe, settings, claims)
            _then_notice(client, pipe, revocation_notice(claims.user_id, reason))
        return len(session_ids)
    return client.transaction(end_all, index, value_from_callable=True)


def _writes(client: redis.Redis) -> redis.client.Pipeline:
    """A MULTI transaction on a single Redis. On a cluster the keys of one
    change (a session, the user's index, a revoked jti) are in different
    slots, which no transaction spans: a plain pipeline, and the notice
    only after its writes (`_then_notice`), so a replica that re-checks on
    the notice finds them."""
    return client.pipeline(transaction=not is_cluster(client))


def _then_notice(client: redis.Redis, pipe: redis.client.Pipeline, notice: str) -> None:
    """Execute `pipe` with the revocation notice (`execute_then_publish`)."""
    execute_then_publish(client, pipe, REVOCATIONS_CHANNEL, notice)


def _revoke_access_token(
    pipe: redis.client.Pipeline, settings: Settings, claims: tokens.Claims
) -> None:
    """Queue the revocation of one access token's jti until it would expire anyway."""
    remaining = claims.expires_at + settings.jwt_leeway_seconds - int(time.time())
    if remaining > 0:
        pipe.set(revoked_key(claims.token_id), "1", ex=remaining)
