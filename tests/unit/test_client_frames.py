"""Client frames: bad input becomes an error frame, never a crash."""

import pytest

from aurora.errors import ValidationError
from fanout.protocol import SendText, parse_client_frame


def parse(raw):
    return parse_client_frame(raw, max_text_chars=100)


def test_the_original_text_frame_goes_to_general():
    assert parse('{"text": "hello"}') == SendText(room="general", text="hello")


def test_a_typed_message_frame_is_accepted():
    frame = '{"type": "message", "room": "general", "text": "hi"}'
    assert parse(frame) == SendText("general", "hi")


def test_empty_text_is_ignored_like_the_original():
    assert parse('{"text": "   "}') is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"text"', "bad_frame"),
        ("{}", "missing_text"),
        ('{"text": 5}', "bad_text"),
        ('{"text": {"$gt": ""}}', "bad_text"),
        ('{"text": ["a"]}', "bad_text"),
        ('{"type": "teleport", "text": "x"}', "unknown_type"),
        ('{"text": "x", "room": "secret"}', "forbidden_room"),
        ('{"text": "' + "x" * 101 + '"}', "too_long"),
        (b'{"text": "binary"}', "unsupported_frame"),
    ],
)
def test_malformed_frames_get_a_stable_error_code(raw, code):
    with pytest.raises(ValidationError) as caught:
        parse(raw)
    assert caught.value.code == code
