"""Messages that carry attachments, through a fan-out replica on real Redis,
moto's S3 server and the drain into the MongoDB-protocol server: checked
against the stored object before the send script runs, then carried in the
broadcast, the resume window, the persistence stream and the document."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from aurora import attachments
from aurora.backends import database, layout, redis_client
from aurora.settings import Settings
from local.servers import free_port
from tests.support.draining import drain_until_idle
from tests.support.fanout import receive_json, replica, send_json, token_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
LIMIT = 1000  # ATTACHMENT_MAX_BYTES in these tests


@pytest.fixture
def cfg(settings: Settings, s3_endpoint: str, s3) -> Settings:
    return dataclasses.replace(settings, s3_endpoint_url=s3_endpoint, attachment_max_bytes=LIMIT)


def uploaded(cfg: Settings, s3, user: str, data: bytes = PNG, signer=None, **kw: str) -> dict:
    """The attachment metadata of a file `user` uploaded through a presigned POST
    (`stored_type`: the Content-Type actually sent, which moto does not check;
    `signer`: the client that signs the POST, default `s3`)."""
    request = attachments.UploadRequest(
        filename=kw.get("filename", "cat.png"),
        content_type=kw.get("content_type", "image/png"),
        size=int(kw.get("size", len(data))),
    )
    grant = attachments.create_upload(request, f"id-{user}", cfg, s3, signer)
    fields = grant["upload"]["fields"] | (
        {"Content-Type": kw["stored_type"]} if "stored_type" in kw else {}
    )
    response = httpx.post(grant["upload"]["url"], data=fields, files={"file": ("f", data)})
    assert response.status_code in (200, 204), response.text
    return grant["attachment"]


async def v1_client(url: str, cfg: Settings, name: str, room: str, since: str | None = None):
    ws = await connect(url)
    await send_json(ws, {"type": "auth", "token": token_for(cfg, name)})
    assert (await receive_json(ws))["type"] == "ready"
    await send_json(ws, {"type": "join", "room": room} | ({"since": since} if since else {}))
    assert (await receive_json(ws))["type"] == "joined"
    return ws


def drain_into_mongo(cfg: Settings) -> list[dict]:
    """One drain run until the stream is empty; the room's stored documents."""
    db = database(cfg)
    drain_until_idle(cfg, consumer="test", block_ms=50)
    return list(db["messages"].find({}, sort=[("ms", 1), ("seq", 1)]))


def stream_length(cfg: Settings) -> int:
    """Entries queued for the database, over every partition."""
    client = redis_client(cfg.redis_url)
    return sum(client.xlen(key) for key in layout(cfg).stream_keys())


async def test_a_checked_attachment_reaches_every_client_and_is_stored_once(cfg, s3):
    attachment = uploaded(cfg, s3, "alice")
    async with replica(cfg) as (url, _):
        alice = await v1_client(url, cfg, "alice", "general")
        bob = await v1_client(url, cfg, "bob", "general")
        # An original-protocol client: URL token, `general`, untyped frames.
        async with connect(f"{url}/?token={token_for(cfg, 'carol')}") as carol:
            send = {"type": "message", "room": "general", "text": "", "client_id": "c1",
                    "attachments": [attachment]}  # fmt: skip
            await send_json(alice, send)
            seen_by_bob = await receive_json(bob)
            seen_by_carol = await receive_json(carol)
            frames = [await receive_json(alice), await receive_json(alice)]
            # A retry with the same client_id is acknowledged, not stored again.
            await send_json(alice, send)
            assert (await receive_json(alice))["duplicate"] is True

        # A client that reconnects gets the attachment in the replay too.
        late = await v1_client(url, cfg, "dave", "general", since="0-1")
        replayed = await receive_json(late)
        for ws in (alice, bob, late):
            await ws.close()

    message_id = seen_by_bob["id"]
    assert {f["type"] for f in frames} == {"message", "ack"}
    assert seen_by_bob["attachments"] == [attachment]
    assert seen_by_bob["text"] == ""  # attachments alone make a message
    assert replayed == seen_by_bob
    # Old clients still get what they render, and ignore the rest.
    assert {"user": "alice", "text": "", "ts": seen_by_bob["ts"]}.items() <= seen_by_carol.items()

    (document,) = drain_into_mongo(cfg)
    assert document["id"] == message_id
    assert document["attachments"] == [attachment]


async def test_a_replica_that_knows_only_the_servers_s3_address_accepts_a_browser_upload(
    cfg, s3, s3_endpoint
):
    """As under docker compose: the upload was signed for, and posted to, the
    browser's address of S3 (localhost here, 127.0.0.1 for the servers); the
    fan-out, configured with the servers' address only, checks it with HEAD."""
    public = dataclasses.replace(
        cfg, s3_public_endpoint_url=s3_endpoint.replace("127.0.0.1", "localhost")
    )
    signer = attachments.presigning_client(public, "us-east-1")
    attachment = uploaded(public, s3, "alice", signer=signer)
    assert cfg.s3_public_endpoint_url == "" and cfg.s3_endpoint_url == s3_endpoint
    async with replica(cfg) as (url, _):
        alice = await v1_client(url, cfg, "alice", "files")
        await send_json(alice, {"type": "message", "room": "files", "text": "",
                                "client_id": "p1", "attachments": [attachment]})  # fmt: skip
        frames = [await receive_json(alice), await receive_json(alice)]
        await alice.close()
    (message,) = [f for f in frames if f["type"] == "message"]
    assert message["attachments"] == [attachment]
    assert stream_length(cfg) == 1


async def test_an_images_pixel_size_travels_with_it_and_must_be_positive_integers(cfg, s3):
    """The sender's client may say how big an image is (readers size its place
    before fetching it): carried in the broadcast and the document as given;
    a size that is not a positive integer is refused."""
    sized = uploaded(cfg, s3, "alice") | {"width": 3, "height": 2}
    bad = [{"width": 0}, {"width": "3"}, {"height": -2}, {"width": 1.5}, {"height": 70_000}]
    async with replica(cfg) as (url, _):
        alice = await v1_client(url, cfg, "alice", "pics")
        bob = await v1_client(url, cfg, "bob", "pics")
        refusals = []
        for i, extra in enumerate(bad):
            frame = {"type": "message", "room": "pics", "text": "x", "client_id": f"bad{i}"}
            await send_json(alice, frame | {"attachments": [sized | extra]})
            refusals.append((await receive_json(alice))["code"])
        await send_json(alice, {"type": "message", "room": "pics", "text": "",
                                "client_id": "ok", "attachments": [sized]})  # fmt: skip
        seen = await receive_json(bob)
        await alice.close()
        await bob.close()

    assert refusals == ["invalid_attachment"] * len(bad)
    assert seen["attachments"] == [sized]
    (document,) = drain_into_mongo(cfg)
    assert document["attachments"] == [sized]


async def test_refused_attachments_get_an_error_frame_and_nothing_is_queued(cfg, s3):
    mine = uploaded(cfg, s3, "alice")
    foreign = uploaded(cfg, s3, "mallory")
    # moto stores what real S3's POST policy would refuse; the HEAD check does not.
    bigger = uploaded(cfg, s3, "alice", PNG + b"more", size=str(len(PNG)))
    oversized = uploaded(cfg, s3, "alice", b"x" * (LIMIT + 1), size="10")
    wrong_type = uploaded(cfg, s3, "alice", stored_type="text/html")
    never_uploaded = attachments.create_upload(
        attachments.UploadRequest(filename="a.png", content_type="image/png", size=5),
        "id-alice",
        cfg,
        s3,
    )["attachment"]
    cases = [
        ("forged url", [mine | {"url": "https://evil.example/x/attachments/id-alice/1/cat.png"}],
         "invalid_attachment"),
        ("another user's upload", [foreign], "invalid_attachment"),
        ("larger than declared", [bigger], "attachment_mismatch"),
        ("stored over the limit", [oversized], "attachment_too_large"),
        ("claims over the limit", [oversized | {"size": LIMIT + 1}], "attachment_too_large"),
        ("stored as a refused type", [wrong_type], "unsupported_file_type"),
        ("claims another type", [mine | {"file_type": "image/gif"}], "attachment_mismatch"),
        ("never uploaded", [never_uploaded], "attachment_not_found"),
        ("a query operator as filename", [mine | {"filename": {"$ne": None}}],
         "invalid_attachment"),
        ("an extra field", [mine | {"owner": "admin"}], "invalid_attachment"),
        ("too many", [mine] * (attachments.MAX_PER_MESSAGE + 1), "invalid_attachment"),
        ("not objects", ["cat.png"], "invalid_attachment"),
        ("not a list", {"url": mine["url"]}, "bad_field"),
    ]  # fmt: skip
    async with replica(cfg) as (url, _):
        alice = await v1_client(url, cfg, "alice", "dev")
        bob = await v1_client(url, cfg, "bob", "dev")
        answers = {}
        for name, items, _ in cases:
            await send_json(alice, {"type": "message", "room": "dev", "text": name,
                                    "client_id": name, "attachments": items})  # fmt: skip
            answers[name] = await receive_json(alice)
        # The connection stays, and the same client_ids are still free.
        await send_json(alice, {"type": "message", "room": "dev", "text": "ok",
                                "client_id": "too many", "attachments": [mine]})  # fmt: skip
        delivered = await receive_json(bob)
        await alice.close()
        await bob.close()

    assert {name: (a["type"], a["code"]) for name, a in answers.items()} == {
        name: ("error", code) for name, _, code in cases
    }
    assert delivered["text"] == "ok"  # the first, and only, message bob saw
    assert stream_length(cfg) == 1


async def test_an_unreachable_s3_answers_unavailable_and_queues_nothing(cfg, s3):
    attachment = uploaded(cfg, s3, "alice")
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    key = attachment["url"].split(f"/{cfg.attachments_bucket}/", 1)[1]
    moved = attachment | {"url": f"{gone}/{cfg.attachments_bucket}/{key}"}
    async with replica(dataclasses.replace(cfg, s3_endpoint_url=gone)) as (url, _):
        alice = await v1_client(url, cfg, "alice", "dev")
        await send_json(alice, {"type": "message", "room": "dev", "text": "hi",
                                "attachments": [moved]})  # fmt: skip
        answer = await receive_json(alice, timeout=20)
        await send_json(alice, {"type": "ping"})
        assert await receive_json(alice) == {"type": "pong"}
        await alice.close()
    assert (answer["type"], answer["code"]) == ("error", "unavailable")
    assert stream_length(cfg) == 0


async def test_an_injection_shaped_filename_is_carried_as_inert_text(cfg, s3):
    hostile = "<img src=x onerror=alert(1)>'; db.messages.drop(); $where.png"
    attachment = uploaded(cfg, s3, "alice", filename=hostile)
    # The upload grant already made it a safe name, and only that name matches the URL.
    assert attachment["filename"] == "img_src_x_onerror_alert_1_db.messages.drop_where.png"
    async with replica(cfg) as (url, _):
        alice = await v1_client(url, cfg, "alice", "dev")
        await send_json(alice, {"type": "message", "room": "dev", "text": hostile,
                                "attachments": [attachment | {"filename": hostile}]})  # fmt: skip
        refused = await receive_json(alice)
        await send_json(alice, {"type": "message", "room": "dev", "text": hostile,
                                "attachments": [attachment]})  # fmt: skip
        raw = await alice.recv()
        while json.loads(raw)["type"] == "presence":  # who is online, after `joined`
            raw = await alice.recv()
        await alice.close()
    assert refused["code"] == "invalid_attachment"
    frame = json.loads(raw)
    assert frame["attachments"] == [attachment] and frame["text"] == hostile
    (document,) = drain_into_mongo(cfg)
    assert document["attachments"] == [attachment] and document["text"] == hostile
