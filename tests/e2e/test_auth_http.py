"""The auth routes over HTTP through the local emulator, as a client calls them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


def new_user(api: str) -> dict:
    creds = {"username": f"carol-{uuid.uuid4().hex[:8]}", "password": "correct-horse-1"}
    assert httpx.post(f"{api}/api/auth/register", json=creds).json() == {"ok": True}
    return creds


def test_a_session_over_http_login_me_refresh_logout(local_stack):
    api = local_stack["api_url"]
    creds = new_user(api)
    login = httpx.post(f"{api}/api/auth/login", json=creds)
    assert login.status_code == 200
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["cache-control"] == "no-store"
    session = login.json()
    bearer = {"Authorization": f"Bearer {session['token']}"}
    assert httpx.get(f"{api}/api/auth/me", headers=bearer).json()["username"] == creds["username"]

    refreshed = httpx.post(
        f"{api}/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new_bearer = {"Authorization": f"Bearer {refreshed.json()['token']}"}
    assert httpx.post(f"{api}/api/auth/logout", headers=new_bearer).json() == {"ok": True}
    # Logout ended the session: every token it issued is refused.
    for headers in (bearer, new_bearer):
        gone = httpx.get(f"{api}/api/auth/me", headers=headers)
        assert (gone.status_code, gone.json()["code"]) == (401, "token_revoked")


def test_the_fanout_refuses_a_logged_out_token(local_stack):
    api, ws = local_stack["api_url"], local_stack["ws_url"]
    token = httpx.post(f"{api}/api/auth/login", json=new_user(api)).json()["token"]
    httpx.post(f"{api}/api/auth/logout", headers={"Authorization": f"Bearer {token}"})

    async def attempt() -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{ws}/?token={token}"):
                pass
        return refused.value.response.status_code

    assert asyncio.run(attempt()) == 401


def test_the_api_serves_its_openapi_document_and_docs_page(local_stack):
    api = local_stack["api_url"]
    document = httpx.get(f"{api}/api/openapi.json").json()
    assert {"/api/auth/login", "/api/auth/refresh", "/api/auth/me"} <= set(document["paths"])
    docs = httpx.get(f"{api}/api/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"username": {"$ne": null}, "password": "x"}', b"\xff\xfe\x00"],
)
def test_junk_over_http_is_a_json_400(local_stack, content):
    response = httpx.post(
        local_stack["api_url"] + "/api/auth/login",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code"}


def test_a_forged_x_forwarded_for_does_not_escape_the_login_throttle(local_stack):
    """Nothing proxies the local stack: the throttles key on the client's own
    address, whatever X-Forwarded-For the client writes."""
    api = local_stack["api_url"]
    creds = new_user(api)
    wrong = {**creds, "password": "not-the-password-1"}
    for n in range(5):  # LOGIN_FAILURES_PER_USER_IP, each from a "new" address
        forged = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
        assert httpx.post(f"{api}/api/auth/login", json=wrong, headers=forged).status_code == 401
    forged = {"X-Forwarded-For": "198.51.100.7"}
    locked = httpx.post(f"{api}/api/auth/login", json=creds, headers=forged)
    assert (locked.status_code, locked.json()["code"]) == (429, "rate_limited")
