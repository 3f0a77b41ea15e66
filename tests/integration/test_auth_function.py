"""The auth function, invoked as Lambda invokes it, against real Redis and MongoDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aurora.tokens import verify_token
from local.runtime import LocalFunction
from tests.support import ROOT

EVENTS = ROOT / "events"


def sample(name: str, body: object | None = None, raw: str | None = None) -> dict:
    event = json.loads(Path(EVENTS / name).read_text())
    if raw is not None:
        event["body"] = raw
    elif body is not None:
        event["body"] = json.dumps(body)
    return event


def call(fn: LocalFunction, event: dict) -> tuple[int, dict]:
    result = fn.invoke(event)
    return result["statusCode"], json.loads(result["body"] or "null")


def test_register_then_login_with_http_api_and_rest_api_events(auth, app_env):
    assert call(auth, sample("register.http-v2.json")) == (200, {"ok": True})
    status, body = call(auth, sample("login.rest-v1.json"))
    assert status == 200
    claims = verify_token(body["token"], app_env)
    assert claims.username == "alice"


def test_a_taken_username_is_a_409_whatever_its_case(auth):
    call(auth, sample("register.http-v2.json"))
    again = sample("register.http-v2.json", {"username": "ALICE", "password": "another-pass"})
    assert call(auth, again) == (409, {"error": "User exists", "code": "user_exists"})


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(auth):
    call(auth, sample("register.http-v2.json"))
    wrong = {"username": "alice", "password": "nope-nope"}
    unknown = {"username": "bob", "password": "nope-nope"}
    refused = (401, {"error": "Invalid credentials", "code": "invalid_credentials"})
    assert call(auth, sample("login.rest-v1.json", wrong)) == refused
    assert call(auth, sample("login.rest-v1.json", unknown)) == refused


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "malformed_json"),
        ("[]", "invalid_request"),
        ('"alice"', "invalid_request"),
        ("{}", "missing_fields"),
        ('{"username": "alice"}', "missing_fields"),
        ('{"username": "", "password": ""}', "missing_fields"),
        ('{"username": {"$ne": null}, "password": "securepass123"}', "invalid_request"),
        ('{"username": ["alice"], "password": "securepass123"}', "invalid_request"),
        ('{"username": 12345, "password": "securepass123"}', "invalid_request"),
        ('{"username": "al", "password": "securepass123"}', "invalid_username"),
        ('{"username": "a\'; DROP TABLE users;--", "password": "securepass1"}', "invalid_username"),
        ('{"username": "alice", "password": "short"}', "invalid_password"),
    ],
)
def test_junk_register_bodies_get_a_400_with_a_stable_code(auth, raw, code):
    status, body = call(auth, sample("register.http-v2.json", raw=raw))
    assert status == 400
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


def test_an_operator_shaped_login_is_a_type_error_not_a_query(auth):
    call(auth, sample("register.http-v2.json"))
    status, body = call(
        auth, sample("login.rest-v1.json", {"username": "alice", "password": {"$ne": None}})
    )
    assert status == 400 and body["code"] == "invalid_request"


def test_health_answers_and_responses_carry_security_headers(auth):
    event = sample("register.http-v2.json")
    event.update(routeKey="GET /api/health", rawPath="/api/health", body=None)
    event["requestContext"]["http"].update(method="GET", path="/api/health")
    result = auth.invoke(event)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"ok": True, "service": "auth"}
    assert result["headers"]["x-content-type-options"] == "nosniff"


def test_a_named_http_api_stage_in_the_path_still_reaches_the_routes(auth):
    """API Gateway sends `/dev/api/...` for a stage named `dev`."""
    event = sample("register.http-v2.json")
    event.update(routeKey="GET /api/health", rawPath="/dev/api/health", body=None)
    event["requestContext"]["http"].update(method="GET", path="/dev/api/health")
    event["requestContext"]["stage"] = "dev"
    result = auth.invoke(event)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"ok": True, "service": "auth"}
