"""Access tokens: issued by the auth function, verified by every REST function
and by the fan-out container with this one module, revocation included.

- HS256 only (the algorithm is pinned), `exp`, `iat` and `jti` required, a
  small leeway for clock skew, and a `username` that keeps the username rule.
- `iss` and `aud` name this deployment (`JWT_ISSUER`, `JWT_AUDIENCE`): a
  token naming another is refused, so a secret shared by mistake does not
  make two deployments' tokens interchangeable. A token with neither (from a
  server that predates them) is accepted while `JWT_ACCEPT_UNSCOPED` is on.
- A `kid` header names the signing secret, so a new secret can sign while the
  previous ones still verify (see `aurora.secrets`): rotating the key does not
  log everyone out.
- `verify_token()` checks the signature and claims (no I/O); `authenticate()`
  (sync, Lambdas) and `authenticate_async()` (asyncio, the fan-out) add the
  revocation check: one pipelined round trip to Redis that fails closed.
- `find_revoked_async()` repeats that check for many already-accepted tokens
  at once (the fan-out's open connections). Revoking is `aurora.sessions`'.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt

from aurora.backends import redis_unavailable, slot_batches
from aurora.errors import AuthenticationError
from aurora.keyspace import revoked_key, session_key
from aurora.secrets import jwt_secrets
from aurora.settings import Settings
from aurora.users import is_valid_username

if TYPE_CHECKING:
    import redis
    import redis.asyncio

ALGORITHM = "HS256"  # pinned: tokens with any other "alg" are refused
MAX_TOKEN_CHARS = 4096
_REQUIRED = ["exp", "iat", "jti", "userId", "username"]
_SCOPE = ("iss", "aud")

# KEYS: any keys. Returns one character per key, "1" if it exists, else "0":
# a single short reply however many keys (20,000 pipelined EXISTS cost the
# caller ~12x the CPU of this script).
_EXISTS_EACH = """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('EXISTS', key) == 1 and '1' or '0'
end
return table.concat(found)
"""
_KEYS_PER_CALL = 1000  # bounds how long one script call holds Redis
_CANNOT_CHECK = "Cannot check the token now, retry"


@dataclass(frozen=True)
class Claims:
    user_id: str
    username: str
    issued_at: int
    expires_at: int
    token_id: str
    session_id: str = ""  # empty for tokens not tied to a session


@dataclass(frozen=True)
class _Keyring:
    signing_kid: str
    signing_secret: str
    by_kid: dict[str, str]


def key_id(secret: str) -> str:
    """A stable, non-reversible name for a secret (the JWT `kid` header)."""
    return hashlib.sha256(b"aurora-kid\0" + secret.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _keyring_of(secrets: tuple[str, ...]) -> _Keyring:
    return _Keyring(key_id(secrets[0]), secrets[0], {key_id(s): s for s in secrets})


def _keyring(settings: Settings) -> _Keyring:
    return _keyring_of(jwt_secrets(settings))


def issue_token(
    user_id: str,
    username: str,
    settings: Settings,
    *,
    session_id: str = "",
    now: int | None = None,
) -> str:
    """A signed HS256 JWT carrying the original's claims (userId, username, iat,
    exp) plus `iss`, `aud`, `jti` and, for session tokens, `sid`."""
    keys = _keyring(settings)
    iat = int(time.time()) if now is None else now
    payload: dict[str, Any] = {
        "userId": user_id,
        "username": username,
        "iat": iat,
        "exp": iat + settings.jwt_ttl_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    if session_id:
        payload["sid"] = session_id
    return jwt.encode(
        payload, keys.signing_secret, algorithm=ALGORITHM, headers={"kid": keys.signing_kid}
    )


def _invalid() -> AuthenticationError:
    return AuthenticationError("Invalid token", code="invalid_token")


def _decode(token: str, secret: str, settings: Settings) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=settings.jwt_leeway_seconds,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": [*_REQUIRED, *_SCOPE]},
        )
    except jwt.MissingRequiredClaimError as missing:
        if missing.claim not in _SCOPE or not settings.jwt_accept_unscoped:
            raise
    # Unscoped: every check but iss and aud, and it must carry neither (one
    # alone is a token of ours that lost the other: refused).
    payload = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        leeway=settings.jwt_leeway_seconds,
        options={"require": _REQUIRED, "verify_aud": False},
    )
    if any(claim in payload for claim in _SCOPE):
        raise _invalid()
    return payload


def verify_token(token: object, settings: Settings) -> Claims:
    """Claims of a well-signed, unexpired token; AuthenticationError for
    anything else. Does not consult revocation: use `authenticate()`."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthenticationError("Missing or malformed token", code="invalid_token")
    keys = _keyring(settings)
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        # Tokens from before key ids existed carry none: the signing key verifies them.
        secret = keys.signing_secret if kid is None else keys.by_kid.get(kid)
        if secret is None:
            raise _invalid()
        payload = _decode(token, secret, settings)
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("Token expired", code="token_expired") from None
    except jwt.PyJWTError:
        raise _invalid() from None
    fields = (payload["userId"], payload["username"], payload["jti"], payload.get("sid", ""))
    if not all(isinstance(f, str) and len(f) <= 256 for f in fields):
        raise _invalid()
    user_id, username, jti, sid = fields
    if not is_valid_username(username):
        raise _invalid()
    return Claims(
        user_id=user_id,
        username=username,
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
        token_id=jti,
        session_id=sid,
    )


# -- revocation ----------------------------------------------------------------


def _revocation_keys(claims: Claims) -> list[str]:
    keys = [revoked_key(claims.token_id)]
    if claims.session_id:
        keys.append(session_key(claims.session_id))
    return keys


def _check_not_revoked(claims: Claims, exists: list[Any]) -> Claims:
    revoked = bool(exists[0])
    session_gone = bool(claims.session_id) and not exists[1]
    if revoked or session_gone:
        raise AuthenticationError("Token revoked", code="token_revoked")
    return claims


def authenticate(token: object, settings: Settings, client: redis.Redis) -> Claims:
    """`verify_token()` plus the revocation check, for synchronous callers."""
    claims = verify_token(token, settings)
    # Fail closed: without Redis a revoked token cannot be told apart.
    with redis_unavailable(_CANNOT_CHECK), client.pipeline(transaction=False) as pipe:
        for key in _revocation_keys(claims):
            pipe.exists(key)
        exists = pipe.execute()
    return _check_not_revoked(claims, exists)


async def authenticate_async(
    token: object, settings: Settings, client: redis.asyncio.Redis
) -> Claims:
    """`verify_token()` plus the revocation check, for asyncio callers."""
    if settings.jwt_secret_parameter or settings.jwt_secret_id:
        # Fetching the secret (every few minutes) is a blocking AWS call: off the loop.
        claims = await asyncio.to_thread(verify_token, token, settings)
    else:
        claims = verify_token(token, settings)
    with redis_unavailable(_CANNOT_CHECK):
        async with client.pipeline(transaction=False) as pipe:
            for key in _revocation_keys(claims):
                pipe.exists(key)
            exists = await pipe.execute()
    return _check_not_revoked(claims, exists)


async def find_revoked_async(client: redis.asyncio.Redis, accepted: Sequence[Claims]) -> list[bool]:
    """For each of `accepted` (claims that passed `authenticate_async()`
    earlier), whether it is revoked now: one round trip for any number of
    them. UnavailableError when Redis cannot answer."""
    keys = list(dict.fromkeys(key for claims in accepted for key in _revocation_keys(claims)))
    if not keys:
        return []
    with redis_unavailable("Cannot check tokens now, retry"):
        async with client.pipeline(transaction=False) as pipe:
            batches = slot_batches(client, keys, _KEYS_PER_CALL)
            for batch in batches:
                # EVAL, not EVALSHA: a pipeline with scripts would first ask
                # Redis whether they are loaded, a second round trip.
                pipe.eval(_EXISTS_EACH, len(batch), *(keys[i] for i in batch))
            replies = await pipe.execute()
    exists = {
        keys[i]: flag
        for batch, reply in zip(batches, replies, strict=True)
        for i, flag in zip(batch, reply, strict=True)
    }
    return [
        exists[revoked_key(claims.token_id)] == "1"
        or (bool(claims.session_id) and exists[session_key(claims.session_id)] == "0")
        for claims in accepted
    ]
