"""The messages function (history pages, search, recent rooms), invoked as
Lambda invokes it, on real Redis and SecantusDB: pages are exact, bad input
is a 4xx, and only a valid, unrevoked token reads anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora import messages, sessions
from aurora.backends import database, redis_client
from aurora.drain import Drain
from aurora.keyspace import STREAM_KEY
from aurora.rooms import record_joins
from aurora.settings import Settings
from aurora.stream import StreamEntry
from aurora.tokens import issue_token, verify_token
from local.runtime import LocalFunction
from tests.support.events import call, event, template_function

T0 = 1_700_000_000_000
OTHER = T0 - 10**6  # ids of another room's messages (ids are unique across rooms)
BIG = 2**64 - 1  # the largest part of a stream id: valid for Redis, too big for BSON


@pytest.fixture
def fn(app_env: Settings) -> Iterator[LocalFunction]:
    function = template_function("MessagesFunction", concurrency=1)
    yield function
    function.close()


@pytest.fixture
def db(app_env: Settings):
    return database(app_env)


@pytest.fixture
def token(app_env: Settings) -> str:
    return issue_token("u" * 24, "alice", app_env)


def get(fn: LocalFunction, path: str, token: str | None, **query: str) -> tuple[int, dict]:
    """One GET through the function, from the sample event of its route."""
    sample = {"/api/search": "search", "/api/rooms": "rooms"}.get(path, "messages")
    request = event(sample, "http-v2", token=token)
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["rawQueryString"] = urlencode(query)
    request["queryStringParameters"] = query or None
    if sample == "messages":
        request["pathParameters"] = {"room": path.split("/")[3]}
    status, body, _ = call(fn, request)
    return status, body


def store(
    db, room: str, n: int, *, per_ms: int = 13, text: str = "m{i}", t0: int = T0
) -> list[str]:
    """n stored messages of `room`, `per_ms` of them in each millisecond (so
    sequence numbers pass 9: string order of ids would be wrong). Oldest first."""
    docs = [
        messages.document(
            StreamEntry(
                id=f"{t0 + i // per_ms}-{i % per_ms}", room=room, user_id="u1",
                username="alice", text=text.format(i=i),
            )
        )
        for i in range(n)
    ]  # fmt: skip
    db[messages.COLLECTION].insert_many(docs)
    return [d["id"] for d in docs]


def ids(page: dict) -> list[str]:
    return [m["id"] for m in page["messages"]]


def walk(fn, token, room: str, direction: str, start: str | None, limit: int) -> list[str]:
    """Every id from following the page cursors to the end."""
    cursor_field = f"next_{direction}"
    seen, cursor, pages = [], start, 0
    while True:
        query = {"limit": str(limit)} | ({direction: cursor} if cursor else {})
        status, page = get(fn, f"/api/rooms/{room}/messages", token, **query)
        assert status == 200, page
        assert len(page["messages"]) <= limit
        seen += ids(page)
        pages += 1
        cursor = page[cursor_field]
        if cursor is None:
            return seen
        assert cursor == seen[-1] and pages < 100


# -- paging ----------------------------------------------------------------------------


def test_walking_every_page_newest_first_returns_each_message_once_in_id_order(fn, db, token):
    stored = store(db, "general", 250)
    store(db, "other", 30, t0=OTHER)
    seen = walk(fn, token, "general", "before", None, limit=40)
    assert seen == stored[::-1]


def test_walking_after_an_id_returns_every_later_message_once_oldest_first(fn, db, token):
    stored = store(db, "general", 250)
    store(db, "other", 30, t0=OTHER)
    assert walk(fn, token, "general", "after", stored[99], limit=33) == stored[100:]


def test_before_and_after_split_the_room_exactly_at_an_id_inside_a_millisecond(fn, db, token):
    stored = store(db, "general", 60)
    middle = stored[31]  # not the first or last of its millisecond
    assert walk(fn, token, "general", "before", middle, 7) == stored[:31][::-1]
    assert walk(fn, token, "general", "after", middle, 7) == stored[32:]


def test_the_last_full_page_says_there_is_nothing_more(fn, db, token):
    stored = store(db, "general", 20)
    status, page = get(fn, "/api/rooms/general/messages", token, limit="20")
    assert (status, ids(page), page["next_before"]) == (200, stored[::-1], None)
    status, page = get(fn, "/api/rooms/empty/messages", token)
    assert (status, page) == (200, {"messages": [], "next_before": None})


def test_a_page_holds_50_by_default_and_at_most_100(fn, db, token):
    stored = store(db, "general", 120)
    assert ids(get(fn, "/api/rooms/general/messages", token)[1]) == stored[::-1][:50]
    assert len(get(fn, "/api/rooms/general/messages", token, limit="100")[1]["messages"]) == 100
    assert get(fn, "/api/rooms/general/messages", token, limit="101")[0] == 400


def test_ids_beyond_what_mongodb_integers_hold_are_compared_not_sent(fn, db, token):
    """Stream ids go to 2**64-1; BSON integers stop at 2**63-1."""
    stored = store(db, "general", 30)
    last_ms = T0 + 29 // 13
    pages = {
        "before the largest id": ({"before": f"{BIG}-{BIG}"}, stored[::-1]),
        "before the end of a millisecond": ({"before": f"{last_ms}-{BIG}"}, stored[::-1]),
        "after the largest id": ({"after": f"{BIG}-{BIG}"}, []),
        "after 2**63": ({"after": f"{2**63}-0"}, []),
        "after the end of a millisecond": ({"after": f"{T0}-{BIG}"}, stored[13:]),
    }
    for name, (query, expected) in pages.items():
        status, page = get(fn, "/api/rooms/general/messages", token, limit="100", **query)
        assert (status, ids(page)) == (200, expected), name


def test_a_stored_message_reads_as_the_frame_that_was_broadcast(fn, db, token):
    attachment = {"url": "https://b.s3.amazonaws.com/attachments/u1/r/cat.png",
                  "file_type": "image/png", "size": 5, "filename": "cat.png"}  # fmt: skip
    plain = StreamEntry(id=f"{T0}-0", room="general", user_id="u1", username="alice", text="hi")
    with_file = StreamEntry(id=f"{T0}-1", room="general", user_id="u2", username="bob",
                            text="", attachments=(attachment,), client_id="c-42")  # fmt: skip
    db[messages.COLLECTION].insert_many([messages.document(e) for e in (plain, with_file)])
    _, page = get(fn, "/api/rooms/general/messages", token)

    def broadcast(e: StreamEntry) -> dict:
        prefix = messages.frame_prefix(e.room, e.user_id, e.username, e.text, e.attachments)
        suffix = "}" if e.client_id is None else f',"client_id":"{e.client_id}"}}'
        return json.loads(prefix + f',"id":"{e.id}","ts":{e.ts}' + suffix)

    assert page["messages"] == [broadcast(with_file), broadcast(plain)]
    assert page["messages"][0]["client_id"] == "c-42"  # a client can settle its own send
    assert "attachments" not in page["messages"][1] and "client_id" not in page["messages"][1]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        ("/api/rooms/general/messages", {"before": "abc"}, "invalid_id"),
        ("/api/rooms/general/messages", {"before": "1-2-3"}, "invalid_id"),
        ("/api/rooms/general/messages", {"after": "-1"}, "invalid_id"),
        ("/api/rooms/general/messages", {"before": f"{BIG + 1}-0"}, "invalid_id"),
        ("/api/rooms/general/messages", {"after": f"0-{BIG + 1}"}, "invalid_id"),
        ("/api/rooms/general/messages", {"before": '{"$gt":""}'}, "invalid_id"),
        ("/api/rooms/general/messages", {"before": "1-0", "after": "1-0"}, "invalid_request"),
        ("/api/rooms/general/messages", {"limit": "0"}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": "101"}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": "ten"}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": "-5"}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": "1e2"}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": ""}, "invalid_limit"),
        ("/api/rooms/general/messages", {"limit": "99999999999999999999999"}, "invalid_limit"),
        ("/api/rooms/a b/messages", {}, "bad_room"),
        ("/api/rooms/" + "r" * 65 + "/messages", {}, "bad_room"),
        ("/api/rooms/caf\u00e9/messages", {}, "bad_room"),
        ("/api/rooms/$where/messages", {}, "bad_room"),
        ("/api/search", {"room": "general"}, "invalid_query"),
        ("/api/search", {"room": "general", "q": ""}, "invalid_query"),
        ("/api/search", {"room": "general", "q": "x" * 101}, "invalid_query"),
        ("/api/search", {"room": "general", "q": "a\0b"}, "invalid_query"),
        ("/api/search", {"q": "hello"}, "bad_room"),
        ("/api/search", {"room": "a/b", "q": "hello"}, "bad_room"),
        ("/api/search", {"room": "general", "q": "hi", "limit": "x"}, "invalid_limit"),
        ("/api/search", {"room": "general", "q": "hi", "before": "x"}, "invalid_id"),
        ("/api/rooms", {"limit": "1000"}, "invalid_limit"),
    ],
)
def test_bad_input_is_a_400_with_a_code_never_a_500(fn, db, token, path, query, code):
    store(db, "general", 3)
    status, body = get(fn, path, token, **query)
    assert (status, body["code"]) == (400, code), body
    assert set(body) == {"error", "code"}


@pytest.mark.parametrize("path", ["/api/rooms/general/messages", "/api/search", "/api/rooms"])
def test_every_route_needs_a_valid_unrevoked_token(fn, app_env, path):
    query = {"room": "general", "q": "hi"} if path == "/api/search" else {}
    expired = issue_token("u1", "alice", app_env, now=1_000_000)
    forged = issue_token("u1", "alice", Settings(env="local", jwt_secret="x" * 40))
    revoked = issue_token("u1", "alice", app_env)
    sessions.end_session(redis_client(app_env.redis_url), app_env, verify_token(revoked, app_env))
    for name, token, code in [
        ("missing", None, "invalid_token"),
        ("garbage", "not.a.jwt", "invalid_token"),
        ("forged", forged, "invalid_token"),
        ("expired", expired, "token_expired"),
        ("revoked", revoked, "token_revoked"),
    ]:
        status, body = get(fn, path, token, **query)
        assert (status, body["code"]) == (401, code), name
    assert get(fn, path, issue_token("u1", "alice", app_env), **query)[0] == 200


# -- search --------------------------------------------------------------------------------

TEXTS = [
    "Hello .* World", "(a+)+$ is a slow pattern", 'try {"$gt":""} here', "use $where please",
    "HELLO again", "nothing to see", "a\\d+b", "Grüße aus Köln",
]  # fmt: skip


@pytest.fixture
def texts(db) -> None:
    docs = [
        messages.document(StreamEntry(id=f"{T0 + i}-0", room="general", user_id="u1",
                                      username="alice", text=text))
        for i, text in enumerate(TEXTS)
    ]  # fmt: skip
    db[messages.COLLECTION].insert_many(docs)
    store(db, "other", 1, text="hello from another room", t0=OTHER)


def found(fn, token, q: str, **query: str) -> list[str]:
    status, body = get(fn, "/api/search", token, room="general", q=q, **query)
    assert status == 200, body
    return [m["text"] for m in body["messages"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (".*", ["Hello .* World"]),
        ("(a+)+$", ["(a+)+$ is a slow pattern"]),
        ('{"$gt":""}', ['try {"$gt":""} here']),
        ("$where", ["use $where please"]),
        ("\\d+", ["a\\d+b"]),
        ("[", []),
        ("^", []),
    ],
)
def test_search_matches_the_query_literally_never_as_a_pattern(fn, token, texts, q, expected):
    assert found(fn, token, q) == expected


def test_search_ignores_case_answers_newest_first_and_stays_in_its_room(fn, token, texts):
    assert found(fn, token, "hello") == ["HELLO again", "Hello .* World"]
    assert found(fn, token, "GRÜSSE") == []  # simple case folding: ß is not "ss"
    assert found(fn, token, "grüße AUS") == ["Grüße aus Köln"]


def test_search_pages_with_before_like_history(fn, db, token):
    stored = store(db, "general", 40, text="match {i}")
    store(db, "general", 5, text="no", t0=T0 + 10**4)  # newer, and not a match
    status, first = get(fn, "/api/search", token, room="general", q="MATCH", limit="15")
    assert status == 200 and ids(first) == stored[::-1][:15]
    seen, cursor = ids(first), first["next_before"]
    while cursor:
        _, page = get(fn, "/api/search", token, room="general", q="match", limit="15",
                      before=cursor)  # fmt: skip
        seen, cursor = seen + ids(page), page["next_before"]
    assert seen == stored[::-1]


# -- rooms -----------------------------------------------------------------------------------


def drain_all(app_env: Settings, db) -> None:
    r = redis_client(app_env.redis_url)
    Drain(r, db, consumer="test", block_ms=10).run(lambda: True, exit_when_idle=True)


def send(app_env: Settings, room: str) -> str:
    entry = StreamEntry(id="0-0", room=room, user_id="u1", username="alice", text="hi")
    return redis_client(app_env.redis_url).xadd(STREAM_KEY, entry.fields())


def test_rooms_list_the_most_recently_active_first_after_a_drain_run(fn, app_env, db, token):
    for room in ["quiet", "busy", "middle", "busy"]:
        send(app_env, room)
    drain_all(app_env, db)
    record_joins(db, {(room, verify_token(token, app_env).user_id): "alice"
                            for room in ["quiet", "busy", "middle"]})  # fmt: skip
    last = {room: send(app_env, room) for room in ["middle", "busy"]}
    drain_all(app_env, db)
    status, body = get(fn, "/api/rooms", token)
    assert status == 200
    assert [r["room"] for r in body["rooms"]] == ["busy", "middle", "quiet"]
    busy = body["rooms"][0]
    assert busy["last_id"] == last["busy"]
    assert busy["last_ts"] == int(last["busy"].split("-")[0])
    assert [r["room"] for r in get(fn, "/api/rooms", token, limit="2")[1]["rooms"]] == [
        "busy", "middle",
    ]  # fmt: skip


def test_the_membership_hook_guards_history_search_and_recent_rooms(fn, app_env, db, token):
    """The one rule the fan-out's `join` asks too (`aurora.membership`)."""
    owner = issue_token("b" * 24, "bob", app_env)
    create = event("rooms", "http-v2", token=owner, body={"room": "secret",
                                                           "visibility": "private"})  # fmt: skip
    create["requestContext"]["http"]["method"] = "POST"
    create["headers"]["content-type"] = "application/json"
    assert call(fn, create)[0] == 201
    for room in ["secret", "open"]:
        send(app_env, room)
    drain_all(app_env, db)
    record_joins(db, {("open", verify_token(token, app_env).user_id): "alice"})
    assert get(fn, "/api/rooms/secret/messages", token)[0] == 403
    assert get(fn, "/api/search", token, room="secret", q="hi")[0] == 403
    assert get(fn, "/api/rooms/open/messages", token)[0] == 200
    assert [r["room"] for r in get(fn, "/api/rooms", token)[1]["rooms"]] == ["open"]


# -- fuzz: whatever the room, cursors, limit, query or token, never a 5xx -------------

ids_and_junk = st.one_of(
    st.text(max_size=60),
    st.builds("{}-{}".format, st.integers(-5, 2**70), st.integers(-5, 2**70)),
    st.sampled_from(
        [f"{T0}-3", f"{T0 + 1}-0", "0-0", f"{BIG}-{BIG}", "1-1\n", "-", "$gt", '{"$gt": ""}']
    ),
    st.just("\u0661-\u0661"),  # Arabic-Indic digits: \d would take them
)
queries = st.fixed_dictionaries(
    {},
    optional={
        "before": ids_and_junk,
        "after": ids_and_junk,
        "limit": st.sampled_from(["-1", "0", "101", "1e3", " 5", "\uff15", "5.0", "99999999999"])
        | st.integers(-2, 200).map(str)
        | st.text(max_size=8),
        "q": st.text(max_size=120) | st.sampled_from([".*", "(a+)+$", "$where", "\x00"]),
        "room": st.just("general") | st.text(max_size=70),
    },
)
rooms = st.just("general") | st.text(max_size=70) | st.sampled_from(["a" * 65, "../x", "r:1"])
tokens = st.just("valid") | st.sampled_from([None, "x.y.z", "e30.e30."])


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(["messages", "search", "rooms"]),
    room=rooms,
    query=queries,
    which_token=tokens,
)
def test_no_input_makes_a_history_route_answer_5xx(fn, db, token, route, room, query, which_token):
    if not db.messages.count_documents({}):
        store(db, "general", 40)
    path = {"search": "/api/search", "rooms": "/api/rooms"}.get(
        route, f"/api/rooms/{quote(room, safe='')}/messages"
    )
    request = event(route, "http-v2", token=token if which_token == "valid" else which_token)
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["rawQueryString"] = urlencode(query)
    request["queryStringParameters"] = query or None
    if route == "messages":
        request["pathParameters"] = {"room": room}
    status, body, _ = call(fn, request)
    assert status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict) and set(body) == {"error", "code"}, body
