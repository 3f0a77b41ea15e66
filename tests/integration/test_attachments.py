"""Attachments against a real S3 API (moto's server on loopback): presigned
uploads, and the HEAD check a message's attachment must pass. moto does not
enforce presigned-POST policies, so these tests upload what S3 would refuse
and prove our own check refuses it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aurora import attachments
from aurora.errors import ValidationError
from aurora.settings import Settings
from aurora.tokens import issue_token
from local.runtime import LocalFunction
from local.template import functions
from tests.support import ROOT

ALICE, MALLORY = "a" * 24, "m" * 24
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24


@pytest.fixture
def cfg(settings: Settings, s3_endpoint: str) -> Settings:
    return dataclasses.replace(settings, s3_endpoint_url=s3_endpoint, attachment_max_bytes=1000)


def upload(grant: dict, data: bytes, **field_overrides: str) -> None:
    fields = grant["upload"]["fields"] | field_overrides
    response = httpx.post(grant["upload"]["url"], data=fields, files={"file": ("f", data)})
    assert response.status_code in (200, 204), response.text


def ask(cfg: Settings, s3, size: int = len(PNG), user: str = ALICE, **kw) -> dict:
    request = attachments.UploadRequest(
        filename=kw.get("filename", "cat.png"),
        content_type=kw.get("content_type", "image/png"),
        size=size,
    )
    return attachments.create_upload(request, user, cfg, s3)


def refused(code: str, metadata: object, cfg: Settings, s3, user: str = ALICE) -> None:
    with pytest.raises(ValidationError) as caught:
        attachments.verify_attachment(metadata, user, cfg, s3)
    assert caught.value.code == code
    assert caught.value.status == 400


def test_an_uploaded_file_passes_the_check_with_the_metadata_it_was_granted(cfg, s3):
    grant = ask(cfg, s3)
    upload(grant, PNG)
    checked = attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)
    assert checked.model_dump() == grant["attachment"]
    assert set(grant["attachment"]) == {"url", "file_type", "size", "filename"}


def test_the_grant_pins_content_type_and_exact_size_in_the_post_policy(cfg, s3):
    import base64

    grant = ask(cfg, s3)
    policy = json.loads(base64.b64decode(grant["upload"]["fields"]["policy"]))
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert ["content-length-range", len(PNG), len(PNG)] in policy["conditions"]
    assert grant["expires_in"] == cfg.attachment_url_ttl_seconds


def test_a_request_over_the_size_limit_or_of_a_refused_type_gets_no_url(cfg, s3):
    with pytest.raises(ValidationError) as too_big:
        ask(cfg, s3, size=cfg.attachment_max_bytes + 1)
    assert too_big.value.code == "attachment_too_large"
    with pytest.raises(ValidationError) as bad_type:
        ask(cfg, s3, content_type="text/html")
    assert bad_type.value.code == "unsupported_file_type"


def test_a_file_larger_than_declared_is_refused_although_the_local_s3_stored_it(cfg, s3):
    grant = ask(cfg, s3)
    upload(grant, PNG + b"more")  # real S3 would refuse this POST; moto does not
    refused("attachment_mismatch", grant["attachment"], cfg, s3)


def test_a_file_over_the_limit_is_refused_even_if_the_message_claims_its_real_size(cfg, s3):
    grant = ask(cfg, s3, size=10)
    upload(grant, b"x" * (cfg.attachment_max_bytes + 1))
    claim = grant["attachment"] | {"size": cfg.attachment_max_bytes + 1}
    refused("attachment_too_large", claim, cfg, s3)


def test_a_file_stored_with_another_content_type_is_refused(cfg, s3):
    allowed, refused_type = ask(cfg, s3), ask(cfg, s3)
    upload(allowed, PNG, **{"Content-Type": "text/plain"})
    upload(refused_type, PNG, **{"Content-Type": "text/html"})
    refused("attachment_mismatch", allowed["attachment"], cfg, s3)
    refused("unsupported_file_type", refused_type["attachment"], cfg, s3)


def test_an_attachment_that_was_never_uploaded_is_refused(cfg, s3):
    refused("attachment_not_found", ask(cfg, s3)["attachment"], cfg, s3)


def test_another_users_upload_cannot_be_attached(cfg, s3):
    grant = ask(cfg, s3, user=MALLORY)
    upload(grant, PNG)
    refused("invalid_attachment", grant["attachment"], cfg, s3, user=ALICE)


@pytest.mark.parametrize(
    "change",
    [
        {"url": "https://evil.example/aurora-attachments/attachments/x/y/cat.png"},
        {"url": "javascript:alert(1)"},
        {"filename": "other.png"},
        {"size": "32"},  # strings are not numbers here
        {"size": -1},
        {"size": True},
        {"file_type": None},
        {"extra": "field"},
    ],
)
def test_malformed_or_foreign_metadata_is_refused_before_any_lookup(cfg, s3, change):
    grant = ask(cfg, s3)
    upload(grant, PNG)
    refused("invalid_attachment", grant["attachment"] | change, cfg, s3)


def test_a_url_that_climbs_out_of_the_users_folder_is_refused(cfg, s3):
    grant = ask(cfg, s3, user=MALLORY)
    upload(grant, PNG)
    key = grant["attachment"]["url"].split(f"/{cfg.attachments_bucket}/", 1)[1]
    climbing = attachments.object_url(cfg, f"attachments/{ALICE}/../../{key}", s3)
    refused("invalid_attachment", grant["attachment"] | {"url": climbing}, cfg, s3)


@pytest.mark.parametrize("metadata", [None, [], "x", 42, {}])
def test_metadata_that_is_not_an_object_is_refused(cfg, s3, metadata):
    refused("invalid_attachment", metadata, cfg, s3)


def test_a_message_carries_a_bounded_list_of_checked_attachments(cfg, s3):
    grants = [ask(cfg, s3) for _ in range(attachments.MAX_PER_MESSAGE + 1)]
    for grant in grants:
        upload(grant, PNG)
    metadata = [g["attachment"] for g in grants]
    allowed = attachments.verify_attachments(metadata[:-1], ALICE, cfg, s3)
    assert len(allowed) == attachments.MAX_PER_MESSAGE
    assert attachments.verify_attachments(None, ALICE, cfg, s3) == []
    for bad in (metadata, metadata[0], "x"):
        with pytest.raises(ValidationError) as caught:
            attachments.verify_attachments(bad, ALICE, cfg, s3)
        assert caught.value.code == "invalid_attachment"


def test_a_download_link_serves_the_stored_file_as_a_download(cfg, s3):
    grant = ask(cfg, s3)
    upload(grant, PNG)
    attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)  # as posting it does
    link = attachments.download_link(grant["attachment"]["url"], cfg, s3)
    response = httpx.get(link["url"])
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-disposition"].startswith("attachment;")
    with pytest.raises(ValidationError):
        attachments.download_link("https://evil.example/x", cfg, s3)


# --- the function, invoked as Lambda invokes it ------------------------------


@pytest.fixture
def function(app_env: Settings, s3, s3_endpoint: str, monkeypatch) -> Iterator[LocalFunction]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("ATTACHMENT_MAX_BYTES", "1000")
    from aurora.settings import get_settings

    get_settings.cache_clear()
    (spec,) = [f for f in functions(ROOT / "template.yaml") if f.name == "AttachmentsFunction"]
    fn = LocalFunction(spec)
    yield fn
    fn.close()


def call(
    fn: LocalFunction, body: object, token: str | None, *, query: str = ""
) -> tuple[int, dict]:
    event = json.loads(Path(ROOT / "events/attachments.http-v2.json").read_text())
    if query:  # GET /api/attachments/link?url=...
        event["routeKey"] = event["requestContext"]["routeKey"] = "GET /api/attachments/link"
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/attachments/link"
        event["requestContext"]["http"]["method"] = "GET"
        event["rawQueryString"] = query
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if token is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = f"Bearer {token}"
    result = fn.invoke(event)
    return result["statusCode"], json.loads(result["body"])


def test_the_endpoint_grants_an_upload_that_then_passes_the_check(function, app_env, s3):
    body = {"filename": "cat.png", "content_type": "image/png", "size": len(PNG)}
    status, grant = call(function, body, issue_token(ALICE, "alice", app_env))
    assert status == 200
    upload(grant, PNG)
    settings = dataclasses.replace(app_env, s3_endpoint_url=str(s3.meta.endpoint_url))
    assert attachments.verify_attachment(grant["attachment"], ALICE, settings, s3).size == len(PNG)


@pytest.mark.parametrize(
    ("body", "token", "status", "code"),
    [
        ({"filename": "a.png", "content_type": "image/png", "size": 5}, None, 401, "invalid_token"),
        ({"filename": "a.png", "content_type": "image/png", "size": 5}, "forged", 401,
         "invalid_token"),
        ({"filename": "a.png", "content_type": "image/png", "size": 5000}, "ok", 400,
         "attachment_too_large"),
        ({"filename": "a.sh", "content_type": "text/x-sh", "size": 5}, "ok", 400,
         "unsupported_file_type"),
        ({"filename": "a.png", "content_type": "image/png"}, "ok", 400, "missing_fields"),
        ({"filename": "a.png", "content_type": "image/png", "size": "big"}, "ok", 400,
         "invalid_request"),
        ("{not json", "ok", 400, "malformed_json"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_error_and_no_url(function, app_env, body, token, status, code):
    if token == "ok":
        token = issue_token(ALICE, "alice", app_env)
    got_status, got = call(function, body, token)
    assert (got_status, got["code"]) == (status, code)
    assert set(got) == {"error", "code"}


def test_the_link_endpoint_needs_a_token_and_one_of_our_urls(function, app_env, s3):
    from urllib.parse import urlencode

    token = issue_token(ALICE, "alice", app_env)
    body = {"filename": "cat.png", "content_type": "image/png", "size": len(PNG)}
    _, grant = call(function, body, token)
    upload(grant, PNG)
    settings = dataclasses.replace(app_env, s3_endpoint_url=str(s3.meta.endpoint_url))
    attachments.verify_attachment(grant["attachment"], ALICE, settings, s3)  # as posting it does
    query = urlencode({"url": grant["attachment"]["url"]})
    status, link = call(function, None, token, query=query)
    assert status == 200
    assert httpx.get(link["url"]).content == PNG
    assert call(function, None, None, query=query)[0] == 401
    foreign = urlencode({"url": "https://evil.example/a.png"})
    assert call(function, None, token, query=foreign) == (
        400, {"error": "Not an attachment URL of this service", "code": "invalid_attachment"},
    )  # fmt: skip


def test_a_logged_out_token_gets_no_upload_and_no_link(function, app_env, s3):
    """The function uses the shared, revocation-aware bearer check: logout
    (through the real auth function) ends access here too."""
    from tests.support.events import call as call_auth
    from tests.support.events import event

    (spec,) = [f for f in functions(ROOT / "template.yaml") if f.name == "AuthFunction"]
    auth = LocalFunction(spec)
    try:
        creds = {"username": "alice", "password": "securepass123"}
        assert call_auth(auth, event("register", "http-v2", body=creds))[0] == 200
        token = call_auth(auth, event("login", "http-v2", body=creds))[1]["token"]
        body = {"filename": "cat.png", "content_type": "image/png", "size": len(PNG)}
        status, grant = call(function, body, token)
        assert status == 200
        assert call_auth(auth, event("logout", "http-v2", token=token))[0] == 200
    finally:
        auth.close()
    assert call(function, body, token) == (
        401, {"error": "Token revoked", "code": "token_revoked"},
    )  # fmt: skip
    from urllib.parse import urlencode

    query = urlencode({"url": grant["attachment"]["url"]})
    assert call(function, None, token, query=query)[1]["code"] == "token_revoked"


# --- browsers reach S3 at another address than the servers (docker compose) ---


@pytest.fixture
def public_endpoint(s3_endpoint: str) -> str:
    """The same moto server by another name: the servers use 127.0.0.1, the
    "browser" localhost (as compose's containers use s3:5000, the host localhost:9000)."""
    assert s3_endpoint.startswith("http://127.0.0.1:")
    return s3_endpoint.replace("127.0.0.1", "localhost")


def test_an_upload_presigned_for_the_public_address_passes_the_servers_check(
    cfg, s3, public_endpoint
):
    public = dataclasses.replace(cfg, s3_public_endpoint_url=public_endpoint)
    signer = attachments.presigning_client(public, "us-east-1")
    request = attachments.UploadRequest(filename="cat.png", content_type="image/png", size=len(PNG))
    grant = attachments.create_upload(request, ALICE, public, s3, signer)
    assert grant["upload"]["url"] == f"{public_endpoint}/{cfg.attachments_bucket}"
    upload(grant, PNG)  # the browser's POST, to localhost
    # The HEAD check with the servers' settings only (the fan-out has no public address).
    assert attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3).size == len(PNG)
    link = attachments.download_link(grant["attachment"]["url"], public, s3, signer)["url"]
    assert link.startswith(f"{public_endpoint}/")
    assert httpx.get(link).content == PNG


def test_the_function_signs_for_the_public_address_it_is_given(
    function, app_env, s3, public_endpoint, monkeypatch
):
    from urllib.parse import urlencode

    from aurora.settings import get_settings

    monkeypatch.setenv("S3_PUBLIC_ENDPOINT_URL", public_endpoint)
    get_settings.cache_clear()
    token = issue_token(ALICE, "alice", app_env)
    body = {"filename": "cat.png", "content_type": "image/png", "size": len(PNG)}
    status, grant = call(function, body, token)
    assert status == 200 and grant["upload"]["url"].startswith(f"{public_endpoint}/")
    upload(grant, PNG)
    servers = dataclasses.replace(app_env, s3_endpoint_url=str(s3.meta.endpoint_url))
    assert attachments.verify_attachment(grant["attachment"], ALICE, servers, s3).size == len(PNG)
    status, link = call(function, None, token, query=urlencode({"url": grant["attachment"]["url"]}))
    assert status == 200 and link["url"].startswith(f"{public_endpoint}/")
    assert httpx.get(link["url"]).content == PNG


# --- the upload is not the file: type-derived names, immutability, budget ----


def test_the_stored_name_takes_its_extension_from_the_declared_type(cfg, s3):
    grant = ask(cfg, s3, filename="invoice.html")  # declared image/png
    assert grant["attachment"]["filename"] == "invoice.png"
    assert grant["attachment"]["url"].endswith("/invoice.png")
    assert attachments.stored_filename("photo.JPEG", "image/jpeg") == "photo.jpg"
    assert attachments.stored_filename("notes", "text/plain") == "notes.txt"
    assert attachments.stored_filename("x.exe", "application/x-custom") == "x.bin"


def test_uploads_land_under_pending_and_only_a_check_makes_the_file(cfg, s3):
    import base64

    grant = ask(cfg, s3)
    key = attachments.key_from_url(cfg, grant["attachment"]["url"], s3)
    policy = json.loads(base64.b64decode(grant["upload"]["fields"]["policy"]))
    assert {"key": attachments.pending_key(key)} in policy["conditions"]
    assert grant["upload"]["fields"]["key"].startswith("pending/")
    upload(grant, PNG)
    bucket = cfg.attachments_bucket
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0
    attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == PNG


def test_a_file_replaced_after_it_was_accepted_is_never_what_a_message_names(cfg, s3):
    """The presigned form stays usable for its lifetime: a second POST replaces
    the upload, but the checked file was copied once and is never replaced."""
    grant = ask(cfg, s3)
    upload(grant, PNG)
    attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)
    swapped = b"\x89PNG\r\n\x1a\n" + b"\xff" * 24  # same size and type, other content
    upload(grant, swapped)
    again = attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)  # a resend
    link = attachments.download_link(grant["attachment"]["url"], cfg, s3)
    assert again.size == len(PNG) and httpx.get(link["url"]).content == PNG


def test_past_the_storage_budget_no_upload_link_is_granted(function, app_env, monkeypatch):
    from aurora.settings import get_settings

    monkeypatch.setenv("ATTACHMENT_STORAGE_PER_USER", "100")
    get_settings.cache_clear()
    alice, mallory = issue_token(ALICE, "alice", app_env), issue_token(MALLORY, "mallory", app_env)
    body = {"filename": "cat.png", "content_type": "image/png", "size": 40}
    answers = [call(function, body, alice) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 403]
    assert answers[2][1]["code"] == "storage_quota_exceeded"
    # A refused request costs nothing; another user has a budget of their own.
    assert call(function, body | {"size": 5000}, alice)[1]["code"] == "attachment_too_large"
    assert call(function, body | {"size": 20}, alice)[0] == 200
    assert call(function, body, mallory)[0] == 200


def test_before_the_check_only_the_uploaders_link_reaches_the_upload(cfg, s3):
    """Their page shows the message it is sending before the server checked
    it; anyone else's link names the checked file, which does not exist yet."""
    grant = ask(cfg, s3)
    upload(grant, PNG)
    url = grant["attachment"]["url"]
    mine = attachments.download_link(url, cfg, s3, caller=ALICE)
    theirs = attachments.download_link(url, cfg, s3, caller=MALLORY)
    assert httpx.get(mine["url"]).content == PNG
    assert httpx.get(theirs["url"]).status_code in (403, 404)  # S3 answers 403 without List
    attachments.verify_attachment(grant["attachment"], ALICE, cfg, s3)
    assert httpx.get(attachments.download_link(url, cfg, s3, caller=MALLORY)["url"]).content == PNG
