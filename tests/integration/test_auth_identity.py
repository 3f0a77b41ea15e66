"""Identity through the auth handler and the accounts CLI, on real Redis and
SecantusDB: names that only look like another user's, accounts stored before
the rule was whole, and tokens scoped to their deployment."""

from __future__ import annotations

import dataclasses
import json

import jwt
import pytest

from aurora import passwords, sessions, tokens, users
from aurora.backends import database, redis_client
from aurora.keyspace import session_key
from aurora.settings import Settings
from scripts import accounts as accounts_cli
from tests.support import run_script
from tests.support.events import FORMATS, call, event

PASSWORD = "securepass123"


@pytest.fixture(params=FORMATS)
def fmt(request) -> str:
    return request.param


def stored_account(settings: Settings, username: str) -> str:
    """An account written straight to MongoDB, as one registered before the rule was whole."""
    return users.create_user(
        database(settings), username, passwords.hash_password(PASSWORD, settings.bcrypt_rounds)
    )


@pytest.mark.parametrize("look_alike", ["alice\n", "alice\r\n", "al\u200bice", "alice\x00"])
def test_a_name_that_renders_like_an_existing_users_is_refused(auth, fmt, look_alike):
    alice = {"username": "alice", "password": PASSWORD}
    assert call(auth, event("register", fmt, body=alice))[:2] == (200, {"ok": True})
    status, body, _ = call(auth, event("register", fmt, body=alice | {"username": look_alike}))
    assert (status, body["code"]) == (400, "invalid_username")


def test_an_account_whose_name_breaks_the_rule_cannot_log_in(auth, app_env, fmt):
    stored_account(app_env, "alice\n")
    body = {"username": "alice\n", "password": PASSWORD}
    status, answer, _ = call(auth, event("login", fmt, body=body))
    assert (status, answer["code"]) == (401, "invalid_credentials")


def test_a_session_of_such_an_account_ends_at_its_next_refresh(auth, app_env, fmt):
    user_id = stored_account(app_env, "alice\n")
    cache = redis_client(app_env.redis_url)
    opened = sessions.open_session(cache, app_env, user_id, "alice\n")
    sid = opened.refresh_token.partition(".")[0]
    status, answer, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": opened.refresh_token})
    )
    assert (status, answer["code"]) == (401, "invalid_refresh_token")
    assert not cache.exists(session_key(sid))
    assert call(auth, event("me", fmt, token=opened.access_token))[0] == 401


def test_issued_tokens_name_this_deployment_and_another_ones_are_refused(auth, app_env, fmt):
    creds = {"username": "alice", "password": PASSWORD}
    call(auth, event("register", fmt, body=creds))
    token = call(auth, event("login", fmt, body=creds))[1]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == (app_env.jwt_issuer, app_env.jwt_audience)
    # Same secret, another deployment: refused.
    elsewhere = dataclasses.replace(app_env, jwt_issuer="aurorachat/elsewhere")
    foreign = tokens.issue_token(claims["userId"], "alice", elsewhere)
    status, answer, _ = call(auth, event("me", fmt, token=foreign))
    assert (status, answer["code"]) == (401, "invalid_token")


# -- the maintenance command -------------------------------------------------------


def test_invalid_usernames_lists_exactly_the_accounts_that_break_the_rule(settings, capsys):
    good = [stored_account(settings, name) for name in ("alice", "Bob.2")]
    bad = {stored_account(settings, name): name for name in ("alice\n", "b\u200bob", "x")}
    assert accounts_cli.main(["invalid-usernames"], settings) == 1
    out, err = capsys.readouterr()
    listed = dict(line.split("\t") for line in out.splitlines())
    assert {user_id: json.loads(name) for user_id, name in listed.items()} == bad
    assert not set(good) & set(listed)
    assert "3 account(s)" in err


def test_invalid_usernames_exits_0_when_every_name_keeps_the_rule(settings, capsys):
    stored_account(settings, "alice")
    assert accounts_cli.main(["invalid-usernames"], settings) == 0
    assert capsys.readouterr().out == ""


def test_the_accounts_cli_runs_as_a_script_with_the_environment_settings(app_env):
    stored_account(app_env, "alice\n")
    done = run_script("scripts/accounts.py", "invalid-usernames")
    assert done.returncode == 1, done.stderr
    assert done.stdout.split("\t")[1].strip() == '"alice\\n"'
