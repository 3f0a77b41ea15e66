"""Tokens and passwords: the shared helpers every function and the fan-out use."""

import time

import jwt
import pytest

from aurora import passwords, tokens
from aurora.errors import AuthenticationError
from aurora.settings import Settings

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4
SETTINGS = Settings(env="local", jwt_secret=SECRET, jwt_leeway_seconds=0)


def test_a_token_carries_the_original_claims():
    token = tokens.issue_token("u1", "alice", SETTINGS, now=1_700_000_000)
    payload = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="aurorachat", options={"verify_exp": False}
    )
    assert payload["userId"] == "u1"
    assert payload["username"] == "alice"
    assert payload["exp"] - payload["iat"] == 24 * 3600


def test_a_fresh_token_verifies():
    claims = tokens.verify_token(tokens.issue_token("u1", "alice", SETTINGS), SETTINGS)
    assert (claims.user_id, claims.username) == ("u1", "alice")


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        42,
        "not-a-jwt",
        "a.b.c",
        "x" * 5000,
        jwt.encode({"userId": "u", "username": "a", "iat": 1, "exp": 2**40}, "wrong-secret-" * 6),
        jwt.encode({"userId": "u", "username": "a", "exp": 2**40}, SECRET),  # no iat
        jwt.encode({"userId": "u", "username": "a", "iat": 1}, SECRET),  # no exp
        jwt.encode({"userId": 7, "username": "a", "iat": 1, "exp": 2**40}, SECRET),
        jwt.encode({"userId": "u", "username": "a", "iat": 1, "exp": 2**40}, SECRET, "HS512"),
    ],
    ids=lambda t: repr(t)[:24],
)
def test_forged_or_malformed_tokens_are_refused(token):
    with pytest.raises(AuthenticationError) as caught:
        tokens.verify_token(token, SETTINGS)
    assert caught.value.code == "invalid_token"


def test_an_unsigned_alg_none_token_is_refused():
    forged = jwt.encode({"userId": "u", "username": "a", "iat": 1, "exp": 2**40}, None, "none")
    with pytest.raises(AuthenticationError):
        tokens.verify_token(forged, SETTINGS)


def test_an_expired_token_says_so():
    now = int(time.time())
    token = tokens.issue_token("u1", "alice", SETTINGS, now=now - 2 * 24 * 3600)
    with pytest.raises(AuthenticationError) as caught:
        tokens.verify_token(token, SETTINGS)
    assert caught.value.code == "token_expired"


def test_a_password_verifies_only_against_its_own_hash():
    hashed = passwords.hash_password("correct horse", rounds=4)
    assert passwords.verify_password("correct horse", hashed)
    assert not passwords.verify_password("wrong horse", hashed)


def test_a_malformed_stored_hash_never_matches():
    assert not passwords.verify_password("anything", "not-a-bcrypt-hash")


def test_passwords_longer_than_72_bytes_hash_like_bcryptjs():
    """bcrypt reads 72 bytes; we cut there explicitly instead of failing."""
    long = "é" * 100  # 200 bytes
    hashed = passwords.hash_password(long, rounds=4)
    assert passwords.verify_password(long, hashed)
    assert passwords.verify_password(long[:36], hashed)  # the first 72 bytes


# -- key rotation ---------------------------------------------------------------

OLD, NEW = "old-secret-" + "a" * 32, "new-secret-" + "b" * 32


def test_a_token_signed_before_a_key_rotation_still_verifies_after_it():
    before = Settings(env="production", jwt_secret=OLD)
    after = Settings(env="production", jwt_secret=NEW, jwt_previous_secrets=(OLD,))
    claims = tokens.verify_token(tokens.issue_token("u1", "alice", before), after)
    assert claims.username == "alice"
    new_token = tokens.issue_token("u1", "alice", after)
    assert jwt.get_unverified_header(new_token)["kid"] == tokens.key_id(NEW)


def test_a_retired_key_no_longer_verifies():
    old_token = tokens.issue_token("u1", "alice", Settings(env="production", jwt_secret=OLD))
    with pytest.raises(AuthenticationError):
        tokens.verify_token(old_token, Settings(env="production", jwt_secret=NEW))


def test_an_unknown_key_id_is_refused_even_if_the_signature_matches_a_known_key():
    payload = {"userId": "u", "username": "a", "iat": 1, "exp": 2**40, "jti": "j"}
    token = jwt.encode(payload, SECRET, algorithm="HS256", headers={"kid": "someone-elses"})
    with pytest.raises(AuthenticationError):
        tokens.verify_token(token, SETTINGS)


def test_a_token_without_a_key_id_is_verified_with_the_signing_key():
    payload = {"userId": "u", "username": "ann", "iat": 1, "exp": 2**40, "jti": "j"}
    assert tokens.verify_token(jwt.encode(payload, SECRET), SETTINGS).user_id == "u"


def test_a_token_without_jti_is_refused_since_it_could_never_be_revoked():
    payload = {"userId": "u", "username": "a", "iat": 1, "exp": 2**40}
    with pytest.raises(AuthenticationError):
        tokens.verify_token(jwt.encode(payload, SECRET), SETTINGS)


def test_the_key_id_does_not_reveal_the_secret():
    assert SECRET not in tokens.key_id(SECRET) and len(tokens.key_id(SECRET)) == 16


def test_a_short_previous_secret_is_refused_outside_local_mode():
    from aurora.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Settings.from_env({"JWT_SECRET": NEW, "JWT_PREVIOUS_SECRETS": "short"})
    assert Settings.from_env({"JWT_SECRET": NEW, "JWT_PREVIOUS_SECRETS": OLD}).jwt_previous_secrets


def test_an_unknown_user_login_spends_a_verification_at_the_configured_cost():
    """What makes the two refusals take one time: the dummy hash has the real cost."""
    assert passwords._dummy_hash(11).startswith("$2b$11$")
    assert passwords._dummy_hash(4).startswith("$2b$04$")


def test_non_positive_throttles_are_refused():
    from aurora.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Settings.from_env({"AURORA_ENV": "local", "LOGIN_FAILURES_PER_USER_IP": "0"})
