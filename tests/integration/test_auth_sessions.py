"""Sessions through the auth handler, with HTTP API (2.0) and REST API (1.0)
events: login, refresh (rotated), logout, password change, me, throttling."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import jwt
import pytest

from aurora.settings import get_settings
from local.runtime import LocalFunction
from tests.support.events import FORMATS, call, event, template_function

ALICE = {"username": "alice", "password": "securepass123"}


@pytest.fixture(params=FORMATS)
def fmt(request) -> str:
    return request.param


def register_and_login(auth, fmt: str, ip: str = "203.0.113.10") -> dict:
    assert call(auth, event("register", fmt, body=ALICE, ip=ip))[:2] == (200, {"ok": True})
    status, body, _ = call(auth, event("login", fmt, body=ALICE, ip=ip))
    assert status == 200, body
    return body


def me(auth, fmt: str, token: str) -> tuple[int, dict]:
    return call(auth, event("me", fmt, token=token))[:2]


def test_login_answers_the_original_token_with_a_24h_lifetime_plus_a_refresh_token(auth, fmt):
    body = register_and_login(auth, fmt)
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert jwt.get_unverified_header(body["token"])["kid"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 24 * 3600
    assert body["refresh_token"]


def test_me_answers_who_the_bearer_is(auth, fmt):
    body = register_and_login(auth, fmt)
    status, who = me(auth, fmt, body["token"])
    assert status == 200
    assert who["username"] == "alice" and who["userId"]


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", "a.b.c"])
def test_me_without_a_valid_bearer_is_a_401_with_a_bearer_challenge(auth, fmt, token):
    status, body, headers = call(auth, event("me", fmt, token=token))
    assert status == 401 and body["code"] == "invalid_token"
    assert headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(("length", "status"), [(7, 400), (8, 200), (128, 200), (129, 400)])
def test_passwords_are_8_to_128_characters(auth, length, status):
    body = {"username": f"len{length}", "password": "p" * length}
    assert call(auth, event("register", "http-v2", body=body))[0] == status


@pytest.fixture
def auth_logs(auth) -> Iterator[io.StringIO]:
    """What the auth handler's Powertools logger writes during the test."""
    call(auth, event("me", "http-v2"))  # loads the handler, and its logger
    # The logger's handler keeps the stdout of the test that first loaded it.
    handler = logging.getLogger("auth").handlers[0]
    previous = handler.setStream(io.StringIO())
    yield handler.stream
    handler.setStream(previous)


def test_log_lines_carry_the_api_gateway_request_id_in_both_formats(auth, auth_logs):
    for fmt in FORMATS:
        body = {"username": f"who-{fmt}", "password": "p" * 10}
        call(auth, event("register", fmt, body=body))
    for fmt in FORMATS:
        request_id = event("register", fmt)["requestContext"]["requestId"]
        assert f'"correlation_id":"{request_id}"' in auth_logs.getvalue()


def test_a_refresh_token_works_once_and_its_successor_works_next(auth, fmt):
    first = register_and_login(auth, fmt)
    status, second, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": first["refresh_token"]})
    )
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert me(auth, fmt, second["token"])[0] == 200
    status, third, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": second["refresh_token"]})
    )
    assert status == 200 and me(auth, fmt, third["token"])[0] == 200


def test_replaying_a_rotated_refresh_token_revokes_the_whole_session(auth, fmt):
    first = register_and_login(auth, fmt)
    _, second, _ = call(auth, event("refresh", fmt, body={"refresh_token": first["refresh_token"]}))
    status, body, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": first["refresh_token"]})
    )
    assert (status, body["code"]) == (401, "refresh_token_reused")
    # The thief's replay ended the session: the legitimate successor is dead too.
    status, body, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": second["refresh_token"]})
    )
    assert (status, body["code"]) == (401, "invalid_refresh_token")
    assert me(auth, fmt, second["token"]) == (
        401,
        {"error": "Token revoked", "code": "token_revoked"},
    )


@pytest.mark.parametrize(
    "refresh_token",
    ["", "nodot", ".secret", "abc.", "not-hex!.x", "0" * 300, "a" * 32 + ".x", "é" * 32 + ".x"],
)
def test_junk_refresh_tokens_are_a_4xx(auth, refresh_token):
    status, body, _ = call(auth, event("refresh", "http-v2", body={"refresh_token": refresh_token}))
    assert status in (400, 401), body
    assert body["code"] in ("missing_fields", "invalid_refresh_token")


def test_logout_revokes_the_access_token_and_the_refresh_token(auth, fmt):
    session = register_and_login(auth, fmt)
    other = call(auth, event("login", fmt, body=ALICE))[1]
    assert call(auth, event("logout", fmt, token=session["token"]))[:2] == (200, {"ok": True})
    assert me(auth, fmt, session["token"])[1]["code"] == "token_revoked"
    status, body, _ = call(
        auth, event("refresh", fmt, body={"refresh_token": session["refresh_token"]})
    )
    assert (status, body["code"]) == (401, "invalid_refresh_token")
    # Another device's session is untouched.
    assert me(auth, fmt, other["token"])[0] == 200


def test_logout_everywhere_ends_every_session_of_the_caller_and_no_one_elses(auth, fmt):
    laptop = register_and_login(auth, fmt)
    phone = call(auth, event("login", fmt, body=ALICE))[1]
    bob = {"username": "bob", "password": "bobs-secure-pass"}
    assert call(auth, event("register", fmt, body=bob))[0] == 200
    bobs = call(auth, event("login", fmt, body=bob))[1]
    body = {"everywhere": True}
    answer = call(auth, event("logout", fmt, body=body, token=phone["token"]))
    assert answer[:2] == (200, {"ok": True}), answer
    for ended in (laptop, phone):
        assert me(auth, fmt, ended["token"])[1]["code"] == "token_revoked"
        refresh = {"refresh_token": ended["refresh_token"]}
        assert call(auth, event("refresh", fmt, body=refresh))[0] == 401
    assert me(auth, fmt, bobs["token"])[0] == 200  # only the caller's own sessions
    assert call(auth, event("login", fmt, body=ALICE))[0] == 200  # the password stands


@pytest.mark.parametrize("body", [None, {}, {"everywhere": False}])
def test_logout_without_everywhere_ends_only_this_session(auth, body):
    laptop = register_and_login(auth, "http-v2")
    phone = call(auth, event("login", "http-v2", body=ALICE))[1]
    status, answer, _ = call(auth, event("logout", "http-v2", body=body, token=laptop["token"]))
    assert (status, answer) == (200, {"ok": True})
    assert me(auth, "http-v2", laptop["token"])[1]["code"] == "token_revoked"
    assert me(auth, "http-v2", phone["token"])[0] == 200


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_logout_everywhere_without_a_valid_bearer_is_a_401_and_ends_nothing(auth, token):
    session = register_and_login(auth, "http-v2")
    sample = event("logout", "http-v2", body={"everywhere": True}, token=token)
    status, body, _ = call(auth, sample)
    assert status == 401 and set(body) == {"error", "code"} and body["code"] == "invalid_token"
    assert me(auth, "http-v2", session["token"])[0] == 200


def test_logout_everywhere_must_be_a_boolean(auth):
    session = register_and_login(auth, "http-v2")
    sample = event("logout", "http-v2", body={"everywhere": "yes"}, token=session["token"])
    status, body, _ = call(auth, sample)
    assert status == 400 and set(body) == {"error", "code"}
    assert me(auth, "http-v2", session["token"])[0] == 200


def test_a_password_change_ends_every_session_and_the_new_password_logs_in(auth, fmt):
    laptop = register_and_login(auth, fmt)
    phone = call(auth, event("login", fmt, body=ALICE))[1]
    change = {"current_password": ALICE["password"], "new_password": "an0ther-secure-pass"}
    status, fresh, _ = call(auth, event("password", fmt, body=change, token=laptop["token"]))
    assert status == 200, fresh
    for old in (laptop, phone):
        assert me(auth, fmt, old["token"])[1]["code"] == "token_revoked"
        refused = call(auth, event("refresh", fmt, body={"refresh_token": old["refresh_token"]}))
        assert refused[0] == 401
    assert me(auth, fmt, fresh["token"])[0] == 200
    assert call(auth, event("login", fmt, body=ALICE))[0] == 401
    new = {"username": "alice", "password": "an0ther-secure-pass"}
    assert call(auth, event("login", fmt, body=new))[0] == 200


def test_a_password_change_needs_the_current_password_and_a_valid_new_one(auth):
    session = register_and_login(auth, "http-v2")
    wrong = {"current_password": "not-the-password", "new_password": "an0ther-secure-pass"}
    status, body, _ = call(auth, event("password", "http-v2", body=wrong, token=session["token"]))
    assert (status, body["code"]) == (401, "invalid_credentials")
    short = {"current_password": ALICE["password"], "new_password": "short"}
    status, body, _ = call(auth, event("password", "http-v2", body=short, token=session["token"]))
    assert (status, body["code"]) == (400, "invalid_password")
    assert me(auth, "http-v2", session["token"])[0] == 200  # nothing changed


def test_five_failed_logins_throttle_that_user_from_that_ip_only(auth, fmt):
    register_and_login(auth, fmt, ip="198.51.100.7")
    wrong = {"username": "Alice", "password": "wrong-password"}  # any case counts as one user
    for _ in range(5):
        assert call(auth, event("login", fmt, body=wrong, ip="198.51.100.7"))[0] == 401
    status, body, headers = call(auth, event("login", fmt, body=ALICE, ip="198.51.100.7"))
    assert (status, body["code"]) == (429, "rate_limited")
    assert 1 <= int(headers["retry-after"]) <= 15 * 60
    # The attacker cannot lock alice out from everywhere.
    assert call(auth, event("login", fmt, body=ALICE, ip="192.0.2.44"))[0] == 200


def test_a_success_clears_the_user_and_ip_failures(auth):
    register_and_login(auth, "http-v2")
    wrong = {"username": "alice", "password": "wrong-password"}
    for _ in range(4):
        call(auth, event("login", "http-v2", body=wrong))
    assert call(auth, event("login", "http-v2", body=ALICE))[0] == 200
    for _ in range(4):
        assert call(auth, event("login", "http-v2", body=wrong))[0] == 401


def test_one_ip_failing_for_many_usernames_hits_the_wider_ip_limit(auth, monkeypatch):
    monkeypatch.setenv("LOGIN_FAILURES_PER_IP", "8")
    get_settings.cache_clear()
    statuses = [
        call(auth, event("login", "http-v2", body={"username": f"user{i}", "password": "x" * 8}))[0]
        for i in range(10)
    ]
    assert statuses == [401] * 8 + [429] * 2
    other_ip = event(
        "login", "http-v2", body={"username": "user0", "password": "x" * 8}, ip="192.0.2.9"
    )
    assert call(auth, other_ip)[0] == 401


def test_registrations_are_throttled_per_ip(auth, monkeypatch):
    monkeypatch.setenv("REGISTRATIONS_PER_IP", "3")
    get_settings.cache_clear()
    statuses = [
        call(
            auth,
            event(
                "register", "http-v2", body={"username": f"user{i}", "password": "securepass123"}
            ),
        )[0]
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    elsewhere = event(
        "register",
        "http-v2",
        body={"username": "user9", "password": "securepass123"},
        ip="192.0.2.1",
    )
    assert call(auth, elsewhere)[0] == 200


def test_passwords_and_tokens_never_reach_the_logs(auth, auth_logs, capfd):
    session = register_and_login(auth, "http-v2")
    call(auth, event("refresh", "http-v2", body={"refresh_token": session["refresh_token"]}))
    call(auth, event("login", "http-v2", body={"username": "alice", "password": "wrong-password"}))
    change = {"current_password": ALICE["password"], "new_password": "an0ther-secure-pass"}
    call(auth, event("password", "http-v2", body=change, token=session["token"]))
    out = capfd.readouterr()
    logs = auth_logs.getvalue() + out.out + out.err
    assert "user registered" in logs and "login refused" in logs  # the logger did write
    for secret in (
        ALICE["password"],
        "wrong-password",
        "an0ther-secure-pass",
        session["token"],
        session["refresh_token"],
    ):
        assert secret not in logs


@pytest.fixture
def docs(app_env) -> Iterator[LocalFunction]:
    """The docs function, which serves the one OpenAPI document of every function."""
    fn = template_function("DocsFunction", concurrency=1)
    yield fn
    fn.close()


def test_the_openapi_document_lists_every_auth_route(docs):
    sample = event("me", "http-v2")
    sample.update(routeKey="GET /api/openapi.json", rawPath="/api/openapi.json")
    sample["requestContext"]["http"]["path"] = "/api/openapi.json"
    status, document, _ = call(docs, sample)
    assert status == 200
    for path in ("register", "login", "refresh", "logout", "password", "me"):
        assert f"/api/auth/{path}" in document["paths"]
    login = document["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"200", "401", "429"} <= set(login)
    assert login["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_a_user_keeps_at_most_the_newest_sessions(auth, monkeypatch):
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "3")
    get_settings.cache_clear()
    sessions = [register_and_login(auth, "http-v2")]
    sessions += [call(auth, event("login", "http-v2", body=ALICE))[1] for _ in range(3)]
    assert me(auth, "http-v2", sessions[0]["token"])[1]["code"] == "token_revoked"
    assert [me(auth, "http-v2", s["token"])[0] for s in sessions[1:]] == [200, 200, 200]


@pytest.mark.parametrize(
    ("route", "raw", "code"),
    [
        ("register", '{"username": {"$ne": null}, "password": "securepass123"}', "invalid_request"),
        ("register", '{"username": "a b", "password": "securepass123"}', "invalid_username"),
        ("register", '{"username": "alice", "password": "short"}', "invalid_password"),
        ("login", "[]", "invalid_request"),
        ("login", '{"username": "alice", "password": ""}', "missing_fields"),
        ("refresh", '{"refresh_token": 42}', "invalid_request"),
        ("password", "{not json", "malformed_json"),
    ],
)
def test_bad_input_is_refused_before_any_redis_or_database_access(
    auth, monkeypatch, route, raw, code
):
    """With both stores unreachable, bad input still gets its 400 at once."""
    from local.servers import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("MONGO_URL", f"mongodb://127.0.0.1:{free_port()}/?retryWrites=false")
    get_settings.cache_clear()
    status, body, _ = call(auth, event(route, "http-v2", raw=raw, token="x"))
    assert (status, body["code"]) == (400, code)


def test_failures_from_one_ipv6_64_count_together(auth):
    register_and_login(auth, "http-v2")
    wrong = {"username": "alice", "password": "wrong-password"}
    for host in range(1, 6):  # five addresses of one /64
        call(auth, event("login", "http-v2", body=wrong, ip=f"2001:db8:5:6::{host}"))
    assert call(auth, event("login", "http-v2", body=ALICE, ip="2001:db8:5:6::99"))[0] == 429
    assert call(auth, event("login", "http-v2", body=ALICE, ip="2001:db8:5:7::1"))[0] == 200


def test_refused_logins_are_counted_as_an_emf_metric(auth, capfd):
    register_and_login(auth, "http-v2")
    capfd.readouterr()
    call(auth, event("login", "http-v2", body={"username": "alice", "password": "wrong-password"}))
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    (emf,) = lines
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "AuroraChat"
    assert emf["LoginRefused"] == [1.0] and emf["service"] == "auth"
