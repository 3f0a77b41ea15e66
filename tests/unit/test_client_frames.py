"""Client frames: every v1 command parses; bad input becomes a ValidationError
with a stable code (an `error` frame), never a crash."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora.errors import ValidationError
from aurora.rooms import check_room
from fanout.protocol import (
    Auth,
    Delete,
    Edit,
    Join,
    Leave,
    Ping,
    React,
    Read,
    SendMessage,
    Typing,
    parse_client_frame,
)


def parse(raw):
    return parse_client_frame(raw, max_text_chars=100)


def test_the_original_text_frame_goes_to_general():
    assert parse('{"text": "hello"}') == SendMessage(type="message", room="general", text="hello")


def test_a_typed_message_frame_carries_room_and_client_id():
    frame = '{"type": "message", "room": "dev", "text": "hi", "client_id": "c1"}'
    assert parse(frame) == SendMessage(type="message", room="dev", text="hi", client_id="c1")


def test_a_blank_original_frame_is_ignored_but_a_blank_typed_message_is_answered():
    """The original server ignored blank text; a v1 client gets an answer to every send."""
    assert parse('{"text": "  "}') is None
    with pytest.raises(ValidationError) as caught:
        parse('{"type": "message", "room": "dev", "text": "  ", "client_id": "c1"}')
    assert caught.value.code == "empty_text"


def test_a_message_may_have_blank_text_only_when_it_carries_attachments():
    attachment = {"url": "u", "file_type": "image/png", "size": 1, "filename": "f.png"}
    frame = {"type": "message", "room": "dev", "text": "", "attachments": [attachment]}
    assert parse(json.dumps(frame)).attachments == [attachment]
    with pytest.raises(ValidationError) as empty:
        parse(json.dumps(frame | {"attachments": []}))
    assert empty.value.code == "empty_text"
    with pytest.raises(ValidationError) as caught:
        parse(json.dumps(frame | {"attachments": attachment}))
    assert caught.value.code == "bad_field"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "auth", "token": "t"}', Auth(type="auth", token="t")),
        ('{"type": "join", "room": "r"}', Join(type="join", room="r")),
        ('{"type": "join", "room": "r", "since": "1-0"}', Join(type="join", room="r", since="1-0")),
        ('{"type": "leave", "room": "r"}', Leave(type="leave", room="r")),
        ('{"type": "typing", "room": "r", "typing": true}', Typing(type="typing", room="r",
                                                                    typing=True)),
        ('{"type": "ping"}', Ping(type="ping")),
        ('{"type": "edit", "room": "r", "id": "1-0", "text": "t"}',
         Edit(type="edit", room="r", id="1-0", text="t")),
        ('{"type": "delete", "room": "r", "id": "1-0", "client_id": "c"}',
         Delete(type="delete", room="r", id="1-0", client_id="c")),
        ('{"type": "react", "room": "r", "id": "1-0", "emoji": "👍", "on": false}',
         React(type="react", room="r", id="1-0", emoji="👍", on=False)),
        ('{"type": "read", "room": "r", "id": "1-0"}', Read(type="read", room="r", id="1-0")),
        ('{"type": "delivered", "room": "r", "id": "1-0"}',
         Read(type="delivered", room="r", id="1-0")),
    ],
)  # fmt: skip
def test_every_v1_command_parses(raw, expected):
    assert parse(raw) == expected


def test_empty_text_is_ignored_like_the_original():
    assert parse('{"text": "   "}') is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"text"', "bad_frame"),
        ("{}", "missing_field"),
        ('{"text": 5}', "bad_field"),
        ('{"text": {"$gt": ""}}', "bad_field"),
        ('{"text": ["a"]}', "bad_field"),
        ('{"type": "teleport", "text": "x"}', "unknown_type"),
        ('{"type": 7}', "unknown_type"),
        ('{"text": "x", "room": "a b"}', "bad_room"),
        ('{"text": "x", "room": "' + "r" * 65 + '"}', "bad_room"),
        ('{"type": "join", "room": "*"}', "bad_room"),
        ('{"type": "join"}', "missing_field"),
        ('{"type": "typing", "room": "r", "typing": 1}', "bad_field"),
        ('{"type": "message", "text": "x", "client_id": ""}', "bad_field"),
        ('{"type": "message", "text": "x", "client_id": 5}', "bad_field"),
        ('{"type": "auth", "token": null}', "bad_field"),
        ('{"text": "' + "x" * 101 + '"}', "too_long"),
        ('{"type": "edit", "room": "r", "id": "1-0"}', "missing_field"),
        ('{"type": "edit", "room": "r", "id": "1-0", "text": " "}', "empty_text"),
        ('{"type": "edit", "room": "r", "id": "1-0", "text": "' + "x" * 101 + '"}', "too_long"),
        ('{"type": "edit", "room": "r", "id": 5, "text": "t"}', "bad_field"),
        ('{"type": "delete", "room": "r"}', "missing_field"),
        (
            '{"type": "react", "room": "r", "id": "1-0", "emoji": ":+1:", "on": true}',
            "invalid_emoji",
        ),
        ('{"type": "react", "room": "r", "id": "1-0", "emoji": "👍", "on": 1}', "bad_field"),
        ('{"type": "react", "room": "r", "id": "1-0", "emoji": "👍"}', "missing_field"),
        ('{"type": "read", "room": "r"}', "missing_field"),
        ('{"type": "delete", "room": "r r", "id": "1-0"}', "bad_room"),
        (b'{"text": "binary"}', "unsupported_frame"),
        ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", "bad_json"),  # nested past the stack
    ],
)
def test_malformed_frames_get_a_stable_error_code(raw, code):
    with pytest.raises(ValidationError) as caught:
        parse(raw)
    assert caught.value.code == code


json_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=1)
)
frames = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            [
                "auth",
                "join",
                "leave",
                "message",
                "edit",
                "delete",
                "react",
                "read",
                "delivered",
                "typing",
                "ping",
                "x",
            ]
        )
        | json_values,
        "room": json_values | st.text(max_size=70),
        "text": json_values,
        "since": json_values,
        "typing": json_values,
        "client_id": json_values,
        "token": json_values,
        "id": json_values | st.sampled_from(["1-0", "0-0", "x"]),
        "emoji": json_values | st.sampled_from(["👍", ":+1:", "👍" * 20]),
        "on": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_any_json_object_parses_or_fails_with_a_validation_error(frame):
    try:
        parse(json.dumps(frame))
    except ValidationError as exc:
        assert exc.code and exc.message


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_any_bytes_or_text_parse_or_fail_with_a_validation_error(raw):
    try:
        parse(raw)
    except ValidationError as exc:
        assert exc.code


def test_a_room_id_is_valid_for_history_exactly_when_the_fanout_accepts_it():
    for room in ["general", "a.b:c-d_e", "r" * 64, "", "r" * 65, "a b", "café", "a/b", "x\n"]:
        try:
            parse_client_frame(json.dumps({"type": "join", "room": room}), max_text_chars=10)
            fanout_ok = True
        except ValidationError:
            fanout_ok = False
        try:
            check_room(room)
            rest_ok = True
        except ValidationError:
            rest_ok = False
        assert fanout_ok == rest_ok, room
