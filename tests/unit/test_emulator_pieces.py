"""The emulator reads template.yaml and speaks API Gateway's formats."""

import base64

from local.apigw import http_api_event, proxy_response
from local.template import Route, functions, schedule_seconds
from tests.support import ROOT


def test_every_function_in_the_template_is_found_with_routes_and_schedules():
    found = {fn.name: fn for fn in functions(ROOT / "template.yaml")}
    auth = found["AuthFunction"]
    assert {r.route_key for r in auth.routes} >= {
        "POST /api/auth/register",
        "POST /api/auth/login",
        "GET /api/health",
    }
    assert (auth.code_uri / "app.py").exists()
    assert found["IngestFunction"].schedules == ("rate(1 minute)",)


def test_routes_match_methods_and_path_parameters():
    route = Route("GET", "/api/rooms/{roomId}/messages")
    assert route.match("GET", "/api/rooms/general/messages") == {"roomId": "general"}
    assert route.match("POST", "/api/rooms/general/messages") is None
    assert route.match("GET", "/api/rooms/a/b/messages") is None
    assert Route("ANY", "/files/{proxy+}").match("PUT", "/files/a/b") == {"proxy": "a/b"}


def test_schedules_speak_rate_expressions():
    assert schedule_seconds("rate(1 minute)") == 60
    assert schedule_seconds("rate(2 hours)") == 7200


def test_a_request_becomes_an_http_api_v2_event():
    event = http_api_event(
        route=Route("POST", "/api/auth/login"),
        method="post",
        path="/api/auth/login",
        raw_query="a=1&a=2",
        headers=[("Content-Type", "application/json"), ("Cookie", "x=1; y=2")],
        body=b'{"a": 1}',
        source_ip="127.0.0.1",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /api/auth/login"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["cookies"] == ["x=1", "y=2"]
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_encoded_like_api_gateway():
    event = http_api_event(
        route=Route("POST", "/x"), method="POST", path="/x", raw_query="", headers=[],
        body=b"\xff\x00", source_ip="127.0.0.1",
    )  # fmt: skip
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"


def test_a_proxy_response_keeps_status_headers_cookies_and_body():
    status, headers, body = proxy_response(
        {"statusCode": 409, "headers": {"content-type": "application/json"},
         "cookies": ["a=b"], "body": '{"error": "x"}', "isBase64Encoded": False}
    )  # fmt: skip
    assert status == 409
    assert ("set-cookie", "a=b") in headers
    assert body == b'{"error": "x"}'
