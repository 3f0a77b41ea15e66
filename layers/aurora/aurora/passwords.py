"""Password hashing with bcrypt.

bcrypt reads at most 72 bytes, and we deliberately hash only the first 72
bytes of the UTF-8 password, as the original (bcryptjs) does: its hashes stay
valid here, and no password that worked there stops working. Two passwords
that share their first 72 bytes are one password; 72 bytes are far more than
a guessable password holds. The cost (`BCRYPT_ROUNDS`) is at least 10 outside
local mode (`Settings.check`).
"""

from __future__ import annotations

from functools import lru_cache

import bcrypt

_BCRYPT_MAX_BYTES = 72


def _secret(password: str) -> bytes:
    return password.encode("utf-8")[:_BCRYPT_MAX_BYTES]


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_secret(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_secret(password), hashed.encode("ascii"))
    except ValueError:  # a malformed stored hash never matches
        return False


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    return hash_password("aurora-timing-equaliser", rounds)


def burn_verify(password: str, rounds: int) -> None:
    """Spend the time of one verification, so a login for an unknown user
    takes as long as one for a known user with a wrong password."""
    verify_password(password, _dummy_hash(rounds))
