"""The persistence stream entry and the message document."""

import json

import pytest

from aurora import messages
from aurora.errors import ValidationError
from aurora.stream import StreamEntry, next_id, parse_id

FIELDS = {"v": "1", "room": "general", "user_id": "u1", "username": "alice", "text": "hi"}


def test_an_entry_round_trips_through_its_fields():
    entry = StreamEntry.from_redis("1700000000000-3", FIELDS)
    assert entry.fields() == FIELDS
    assert entry.ts == 1700000000000


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (None, "empty_entry"),
        ({}, "empty_entry"),
        ({**FIELDS, "v": "2"}, "bad_version"),
        ({k: v for k, v in FIELDS.items() if k != "text"}, "missing_fields"),
    ],
)
def test_entries_that_are_not_schema_v1_are_poison(fields, code):
    with pytest.raises(ValidationError) as caught:
        StreamEntry.from_redis("1-0", fields)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "bad",
    [
        "", "abc", "1-", "-1", "1-2-3", "1700000000000", "1-2\n", "\u0661-1", " 1-2", "+1-2",
        "18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-0",
    ],
)  # fmt: skip
def test_ids_redis_would_not_accept_are_refused(bad):
    with pytest.raises(ValidationError) as caught:
        parse_id(bad)
    assert caught.value.code == "invalid_id"


def test_the_largest_stream_id_is_accepted():
    largest = 2**64 - 1
    assert parse_id(f"{largest}-{largest}") == (largest, largest)


def test_document_ids_sort_like_stream_ids_not_like_strings():
    ids = ["1700000000000-9", "1700000000000-10", "1700000000001-0"]
    docs = [messages.document(StreamEntry.from_redis(i, FIELDS)) for i in ids]
    assert sorted(docs, key=lambda d: (d["ms"], d["seq"])) == docs
    assert sorted(ids) != ids  # why ms/seq exist: "…-10" < "…-9" as strings


def test_the_document_keeps_the_stream_id_and_the_later_fields():
    doc = messages.document(StreamEntry.from_redis("1700000000000-1", FIELDS))
    assert (
        doc["_id"] == messages.stored_key("general", "1700000000000-1") == "general/1700000000000-1"
    )
    assert doc["id"] == "1700000000000-1"
    assert doc["status"] == "sent"
    assert doc["attachments"] == []
    assert doc["deleted"] is False


def test_next_id_is_the_smallest_greater_id():
    assert next_id("5-9") == "5-10"
    assert next_id(f"5-{2**64 - 1}") == "6-0"
    with pytest.raises(ValidationError):
        next_id(f"{2**64 - 1}-{2**64 - 1}")


def test_the_frame_prefix_completes_to_valid_json_with_any_text():
    text = 'quote " backslash \\ </script> 💬 \u2028'
    prefix = messages.frame_prefix("general", "u1", "alice", text)
    frame = json.loads(prefix + ',"id":"1-0","ts":1}')
    assert frame == {
        "type": "message",
        "room": "general",
        "user": "alice",
        "user_id": "u1",
        "text": text,
        "id": "1-0",
        "ts": 1,
    }


ATTACHMENT = {"url": "http://s3/b/attachments/u1/k/cat.png", "file_type": "image/png",
              "size": 32, "filename": "cat.png"}  # fmt: skip


def test_an_entry_with_attachments_round_trips_and_one_without_has_none():
    fields = {**FIELDS, "attachments": json.dumps([ATTACHMENT])}
    entry = StreamEntry.from_redis("1-0", fields)
    assert entry.attachments == (ATTACHMENT,)
    assert StreamEntry.from_redis("1-0", entry.fields()) == entry
    # Entries queued before the field existed stay valid: no field, no attachments.
    assert StreamEntry.from_redis("1-0", FIELDS).attachments == ()
    assert "attachments" not in StreamEntry.from_redis("1-0", FIELDS).fields()


def test_the_document_and_the_frame_carry_the_attachments():
    entry = StreamEntry.from_redis("1-0", {**FIELDS, "attachments": json.dumps([ATTACHMENT])})
    assert messages.document(entry)["attachments"] == [ATTACHMENT]
    frame = json.loads(messages.frame_prefix("r", "u1", "alice", "", [ATTACHMENT]) + "}")
    assert frame["attachments"] == [ATTACHMENT]
    assert "attachments" not in json.loads(messages.frame_prefix("r", "u1", "a", "hi") + "}")


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        "not json",
        "[]",
        json.dumps(ATTACHMENT),
        json.dumps([{**ATTACHMENT, "$where": "1"}]),
        json.dumps([{**ATTACHMENT, "size": "32"}]),
        "[" * 5000 + "]" * 5000,  # deeper than Python's recursion limit
    ],
)
def test_an_entry_whose_attachments_are_malformed_is_poison(raw):
    with pytest.raises(ValidationError) as caught:
        StreamEntry.from_redis("1-0", {**FIELDS, "attachments": raw})
    assert caught.value.code == "bad_attachments"


def test_an_entrys_client_id_is_stored_and_read_back_as_in_the_broadcast():
    entry = StreamEntry.from_redis("5-1", {**FIELDS, "client_id": "c-1"})
    assert entry.client_id == "c-1" and entry.fields()["client_id"] == "c-1"
    assert messages.from_document(messages.document(entry))["client_id"] == "c-1"
    bare = StreamEntry.from_redis("5-2", FIELDS)
    assert "client_id" not in bare.fields()
    assert "client_id" not in messages.from_document(messages.document(bare))


@pytest.mark.parametrize("client_id", ["", "x" * 65])
def test_an_entry_whose_client_id_is_malformed_is_poison(client_id):
    with pytest.raises(ValidationError) as caught:
        StreamEntry.from_redis("5-1", {**FIELDS, "client_id": client_id})
    assert caught.value.code == "bad_client_id"
