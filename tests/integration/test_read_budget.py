"""History, search and room listing share one budget per user in Redis: one
client cannot keep MongoDB busy for everyone (5 a second, bursts of 20)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from aurora.settings import Settings, get_settings
from aurora.tokens import issue_token
from local.runtime import LocalFunction
from tests.support.events import call, event, template_function

# (route sample, path, query): the three routes the budget covers.
READ_ROUTES = [
    ("messages", "/api/rooms/dev/messages", {}),
    ("search", "/api/search", {"room": "dev", "q": "hello"}),
    ("rooms", "/api/rooms", {}),
]


@pytest.fixture
def fn(app_env: Settings, monkeypatch) -> Iterator[LocalFunction]:
    # The default burst; a refill slow enough that the test's own pace adds nothing.
    monkeypatch.setenv("READS_PER_SECOND", "0.01")
    get_settings.cache_clear()
    function = template_function("MessagesFunction", concurrency=1)
    yield function
    function.close()


def read(fn: LocalFunction, token: str, route: int) -> tuple[int, dict, dict]:
    sample, path, query = READ_ROUTES[route]
    request = event(sample, "http-v2", token=token)
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["rawQueryString"] = urlencode(query)
    request["queryStringParameters"] = query or None
    if sample == "messages":
        request["pathParameters"] = {"room": "dev"}
    return call(fn, request)


def test_a_user_past_the_read_burst_gets_429_and_others_keep_reading(fn, app_env):
    alice = issue_token("a" * 24, "alice", app_env)
    bob = issue_token("b" * 24, "bob", app_env)
    # Every route draws from the one bucket: 7 rounds of the three is 21 requests.
    answers = [read(fn, alice, i % 3) for i in range(21)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    _, body, headers = answers[20]
    assert body["code"] == "rate_limited" and 1 <= int(headers["retry-after"]) <= 100
    assert [read(fn, bob, route)[0] for route in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("route", range(3))
def test_each_read_route_refuses_a_caller_over_the_budget(fn, app_env, route):
    carol = issue_token("c" * 24, "carol", app_env)
    for _ in range(20):
        read(fn, carol, (route + 1) % 3)  # the budget spent on another route
    status, body, _ = read(fn, carol, route)
    assert (status, body["code"]) == (429, "rate_limited")
