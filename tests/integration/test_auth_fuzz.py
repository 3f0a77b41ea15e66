"""Property-based fuzzing of every auth route through the real handler:
whatever the body, token or encoding, the answer is a JSON 2xx/4xx, never a 5xx."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora.settings import Settings
from local.runtime import LocalFunction
from tests.support.events import event, template_function

# Each route with the fields its body has.
ROUTES = {
    "register": ["username", "password"],
    "login": ["username", "password"],
    "refresh": ["refresh_token"],
    "logout": [],
    "password": ["current_password", "new_password"],
    "me": [],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
strings = st.text(max_size=300) | st.sampled_from(["alice", "securepass123", "a.b", "x" * 2000])


def bodies(fields: list[str]) -> st.SearchStrategy[str]:
    """Bodies shaped like the route's (any value in any field: operators,
    numbers, odd strings), other JSON, and text that is not JSON at all."""
    shaped = st.fixed_dictionaries({}, optional={f: strings | json_values for f in fields})
    return st.one_of(
        shaped.map(json.dumps),
        shaped.map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=200),
        st.sampled_from(
            ["", "{", "null", "[]", '{"username": {"$ne": null}, "password": {"$gt": ""}}']
        ),
    )


tokens = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300),
    st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.eyJ1c2VySWQiOiJ4In0.", "x" * 5000]),
)


@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    fn = template_function("AuthFunction", concurrency=1)
    yield fn
    fn.close()


def answer(fn: LocalFunction, sample: dict) -> tuple[int, object]:
    result = fn.invoke(sample)
    raw = result.get("body") or "null"
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return result["statusCode"], json.loads(raw)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route_and_body=st.sampled_from(sorted(ROUTES)).flatmap(
        lambda route: st.tuples(st.just(route), bodies(ROUTES[route]))
    ),
    fmt=st.sampled_from(["http-v2", "rest-v1"]),
    token=tokens,
    encoded=st.booleans(),
)
def test_no_input_makes_an_auth_route_answer_5xx(
    app_env: Settings, auth, route_and_body, fmt, token, encoded
):
    route, body = route_and_body
    sample = event(route, fmt, raw=body, token=token)
    if encoded:  # API Gateway base64-encodes bodies it considers binary
        sample["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
        sample["isBase64Encoded"] = True
    status, reply = answer(auth, sample)
    assert status < 500, (status, reply)
    if status >= 400:
        assert isinstance(reply, dict) and set(reply) == {"error", "code"}, reply
