"""Attacks on a running replica (a process, as deployed): property-based
fuzzing of the WebSocket protocol, tampered tokens on every way in, and
injection-shaped strings in every field. Whatever arrives: no 5xx, no crash,
no frame of a room the connection did not join, and the replica keeps serving."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from aurora.keyspace import revoked_key, room_channel
from aurora.settings import Settings
from aurora.tokens import issue_token, key_id
from local.servers import free_port
from tests.support.faults import RedisServer, Replica, new_redis, stack_env
from tests.support.settings import TEST_SECRET

VICTIM_ROOM = "victims-only"
# Closes a hostile frame may earn: protocol error, not UTF-8, too big, policy,
# and 4001 for an `auth` frame with a bad token (a failed re-auth ends the connection).
CLEAN_CLOSES = {1002, 1007, 1008, 1009, 4001}
FRAME_TYPES = ["auth", "join", "leave", "message", "typing", "ping", "presence", "read", "x", ""]
INJECTIONS = [
    '{"$gt": ""}', "$where", "'; DROP TABLE messages; --", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", "../../etc/passwd", "\u0000", "%s%n%x", "{{7*7}}",
    "${jndi:ldap://x/a}", "\r\nFLUSHALL\r\n", "*1\r\n$8\r\nFLUSHALL\r\n", "redis.call('FLUSHALL')",
    "aurora:room:{general}", "general\nvictims-only", "\u202eevil", "\ufeff", "é" * 50,
    "dm:" + "a" * 64, VICTIM_ROOM + " ", "0-0", "-1", "99999999999999999999-0", "+inf",
]  # fmt: skip


@dataclasses.dataclass
class Target:
    redis: RedisServer
    replica: Replica
    settings: Settings

    def token(self, name: str) -> str:
        return issue_token(f"id-{name}", name, self.settings)


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    """One replica over its own Redis; a victim chats in a room the attacker
    never joins for as long as the module runs."""
    data: Path = tmp_path_factory.mktemp("attack")
    redis_server = new_redis(data / "redis")
    # The per-room send rate is not under test here (the injection test sends fast).
    env = stack_env(redis_server.url, RATE_LIMIT_MESSAGES="1000")
    replica = Replica("fanout-attacked", free_port(), data, env=env).start()
    settings_ = Settings(env="local", redis_url=redis_server.url, jwt_secret=TEST_SECRET)
    stop = threading.Event()
    victim = threading.Thread(target=_victim_chat, args=(redis_server, stop), daemon=True)
    victim.start()
    yield Target(redis_server, replica, settings_)
    stop.set()
    victim.join(5)
    log = replica.log()
    alive = replica.process.process.poll() is None
    replica.stop()
    redis_server.stop()
    assert alive, "the replica died:\n" + log[-3000:]
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def _victim_chat(redis_server: RedisServer, stop: threading.Event) -> None:
    """Frames published in the victim's room, as the send script publishes them."""
    client = redis_server.client()
    i = 0
    while not stop.is_set():
        frame = json.dumps({"type": "message", "room": VICTIM_ROOM, "id": f"{10**12 + i}-0",
                            "text": "private"})  # fmt: skip
        client.publish(room_channel(VICTIM_ROOM), f"{10**12 + i}-0 {frame}")
        i += 1
        time.sleep(0.01)
    client.close()


# -- what an attacker sends ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
    | st.sampled_from(INJECTIONS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)  # fmt: skip
rooms = st.sampled_from(["general", "dev", "a" * 65, "", "dm:x", *INJECTIONS]) | st.text(
    max_size=70
)
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(FRAME_TYPES)},
    optional={
        "room": rooms | json_values,
        "text": st.sampled_from(INJECTIONS) | st.text(max_size=200) | json_values,
        "since": st.sampled_from(["0-0", "1-1", "x", "-", "18446744073709551616-0"]) | json_values,
        "client_id": st.text(max_size=80) | json_values,
        "typing": json_values,
        "token": st.text(max_size=100) | json_values,
        "attachments": json_values,
        "id": json_values,
    },
)


@st.composite
def hostile(draw) -> tuple[str, object]:
    """(how it is sent, what is sent)."""
    kind = draw(st.sampled_from(["json", "json", "json", "text", "deep", "invalid_utf8",
                                 "binary", "fragments", "oversized"]))  # fmt: skip
    match kind:
        case "json":
            return kind, json.dumps(draw(typed_frames | json_values))
        case "text":
            return kind, draw(st.text(max_size=300))
        case "deep":
            depth = draw(st.integers(100, 50_000))
            return kind, draw(st.sampled_from(["[", '{"a":'])) * depth
        case "invalid_utf8":
            return kind, draw(st.binary(min_size=1, max_size=50)) + b"\xff\xfe\xc3"
        case "binary":
            return kind, draw(st.binary(max_size=300))
        case "fragments":
            frame = json.dumps(draw(typed_frames))
            cut = draw(st.integers(0, len(frame)))
            return kind, [frame[:cut], frame[cut:]]
        case _:
            return kind, json.dumps({"type": "message", "room": "general", "text": "x" * 20_000})


@contextlib.contextmanager
def _open(target: Target, name: str, *, token: str | None = None) -> Iterator[ClientConnection]:
    """A connection: authenticated as `name` (ready read), or, with `token`
    given, one that offers no token and must send `auth` first."""
    offer = ["aurora.v1"] if token is not None else ["aurora.v1", f"bearer.{target.token(name)}"]
    with connect(target.replica.url, subprotocols=offer, open_timeout=10, max_size=None) as ws:
        if token is None:
            assert json.loads(ws.recv(5))["type"] == "ready"
        yield ws


def _deliver(ws: ClientConnection, kind: str, payload: object) -> None:
    if kind == "invalid_utf8":
        ws.send(payload, text=True)  # a text frame whose bytes are not UTF-8
    elif kind == "binary":
        ws.send(payload, text=False)
    else:
        ws.send(payload)  # a list is sent as a fragmented message


def _read_until_pong(ws: ClientConnection, joined: set[str]) -> None:
    """Every frame up to the pong; each of a room this connection joined."""
    while True:
        frame = json.loads(ws.recv(10))
        if frame.get("type") == "joined":
            joined.add(frame["room"])
        if frame.get("type") in ("message", "typing", "presence") and "room" in frame:
            assert frame["room"] in joined, f"a frame of a room not joined: {frame}"
        if frame.get("type") == "pong":
            return


NO_HEALTH_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=300, deadline=None, suppress_health_check=NO_HEALTH_CHECKS)
@given(attack=st.lists(hostile(), min_size=1, max_size=4))
def test_no_frame_crashes_the_replica_or_leaks_another_room(target, attack):
    joined: set[str] = set()
    with _open(target, "mallory") as ws:
        try:
            for kind, payload in attack:
                _deliver(ws, kind, payload)
                ws.send(json.dumps({"type": "ping"}))
                _read_until_pong(ws, joined)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code in CLEAN_CLOSES, f"closed with {code} after {kind}"
    assert VICTIM_ROOM not in joined


offers = st.lists(st.text(alphabet="abcdefghijklmnop.,=-_ ", min_size=1, max_size=40), max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=NO_HEALTH_CHECKS)
@given(
    path=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    protocols=offers,
    origin=st.sampled_from([None, "null", "http://evil.example", "http://127.0.0.1:1"]),
)
def test_no_upgrade_request_gets_a_5xx(target, path, protocols, origin):
    url = target.replica.url + "/" + path.lstrip("/")
    headers = {"Origin": origin} if origin else {}
    try:
        with connect(url, subprotocols=protocols or None, additional_headers=headers,
                     open_timeout=10):  # fmt: skip
            pass
    except InvalidStatus as refused:
        assert refused.response.status_code < 500, refused.response
    except (WebSocketException, ValueError, OSError):
        pass  # malformed before it left (an unparseable URL) or closed: no HTTP answer


# -- tampered tokens, on every way in ---------------------------------------------------


def _tampered(target: Target) -> dict[str, str]:
    s = target.settings
    now = int(time.time())
    claims = {"userId": "id-mallory", "username": "mallory", "iat": now, "exp": now + 600,
              "iss": s.jwt_issuer, "aud": s.jwt_audience, "jti": uuid.uuid4().hex}  # fmt: skip
    kid = {"kid": key_id(TEST_SECRET)}

    def signed(payload: dict, secret: str = TEST_SECRET, headers: dict = kid) -> str:
        return jwt.encode(payload, secret, "HS256", headers=headers)

    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    revoked = dict(claims, jti=uuid.uuid4().hex)
    target.redis.client().set(revoked_key(revoked["jti"]), "1", ex=600)
    head, _, signature = signed(claims).split(".")
    return {
        "alg none": f"{header}.{body}.",
        "wrong key": signed(claims, "another-secret-that-is-long-enough-0123456789"),
        "wrong kid": signed(claims, headers={"kid": "someone-elses"}),
        "expired": signed(claims | {"iat": now - 7200, "exp": now - 3600}),
        "revoked": signed(revoked),
        "another deployment": signed(claims | {"iss": "other", "aud": "other"}),
        "signature cut": f"{head}.{body}.{signature[:-5]}",
        "claims swapped": f"{head}.{body.replace('A', 'B', 1)}.{signature}",
        "garbage": "x" * 4000,
    }


@pytest.mark.parametrize("way", ["url", "subprotocol", "first frame", "re-auth"])
def test_tampered_tokens_are_refused_on_every_way_in(target, way):
    for name, token in _tampered(target).items():
        what = f"{name} by {way}"
        if way in ("url", "subprotocol"):
            url = target.replica.url + (f"/?token={token}" if way == "url" else "")
            offer = ["aurora.v1", f"bearer.{token}"] if way == "subprotocol" else None
            with pytest.raises(InvalidStatus) as refused, connect(url, subprotocols=offer):
                pass
            assert refused.value.response.status_code == 401, what
            continue
        first = way == "first frame"
        with _open(target, "mallory", token=token if first else None) as ws:
            ws.send(json.dumps({"type": "auth", "token": token}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    assert json.loads(ws.recv(10))["type"] != "ready", f"{what} was accepted"
        assert closed.value.rcvd.code == 4001, what


def test_injection_shaped_strings_are_stored_as_text_and_break_nothing(target):
    """Each as a room, a client_id and a text: refused or taken literally."""
    r = target.redis.client()
    r.set("aurora:canary", "still here")
    with _open(target, "mallory") as ws:
        ws.send(json.dumps({"type": "join", "room": "dev"}))
        assert json.loads(ws.recv(5))["type"] == "joined"
        joined = {"dev"}
        for i, text in enumerate(INJECTIONS):
            for frame in (
                {"type": "join", "room": text},
                {"type": "message", "room": "dev", "text": text, "client_id": f"inj-{i}"},
                {"type": "message", "room": "dev", "text": "x", "client_id": text},
            ):
                ws.send(json.dumps(frame))
            ws.send(json.dumps({"type": "ping"}))
            _read_until_pong(ws, joined)
            time.sleep(0.15)  # within every send rate
    assert r.get("aurora:canary") == "still here"
    texts = {fields["text"] for _, fields in r.xrange("aurora:messages")}
    assert {t for t in INJECTIONS if t.strip()} <= texts
