"""Change entries (schema version 2) and the rules that apply them: any
order, any replay, converge on one document."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora import message_state
from aurora.errors import ValidationError
from aurora.stream import ChangeEntry, StreamEntry, change_fields, parse_entry

AUTHOR = "u-author"


def change(seq: int, kind: str, text: str = "", user_id: str = AUTHOR) -> ChangeEntry:
    return ChangeEntry(f"2000-{seq}", kind, "r", user_id, "name", "1000-0", text)


def reaction(seq: int, user_id: str, emoji: str, on: bool) -> ChangeEntry:
    return ChangeEntry(f"2000-{seq}", "react", "r", user_id, "name", "1000-0", "", emoji, on)


def test_a_change_entry_round_trips_and_a_message_entry_still_parses():
    edit = change(1, "edit", "new text")
    assert parse_entry(edit.id, edit.fields()) == edit
    react = reaction(2, "u2", "👍", False)
    assert parse_entry(react.id, react.fields()) == react
    message = StreamEntry("1000-0", "r", AUTHOR, "name", "hi")
    assert parse_entry(message.id, message.fields()) == message


def test_a_reader_of_messages_only_refuses_a_change_entry_as_an_unknown_version():
    """What a drain of the previous release does: dead-letter it, replayable."""
    with pytest.raises(ValidationError) as refused:
        StreamEntry.from_redis("2000-1", change_fields("delete", "r", AUTHOR, "n", "1000-0"))
    assert refused.value.code == "bad_version"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (change_fields("edit", "r", "u", "n", "1000-0", "t") | {"kind": "burn"}, "bad_kind"),
        (change_fields("edit", "r", "u", "n", "3000-0", "t"), "bad_target"),
        (change_fields("edit", "r", "u", "n", "x", "t"), "invalid_id"),
        ({"v": "2", "kind": "delete", "room": "r"}, "missing_fields"),
        (
            change_fields("react", "r", "u", "n", "1000-0", emoji="👍") | {"on": "x"},
            "missing_fields",
        ),
    ],
)
def test_a_malformed_change_entry_is_poison_with_a_stable_code(fields, code):
    with pytest.raises(ValidationError) as refused:
        parse_entry("2000-1", fields)
    assert refused.value.code == code


DOC = {"_id": "r/1000-0", "user_id": AUTHOR, "text": "original", "deleted": False, "rev": 0}


def applied(changes: list[ChangeEntry]) -> dict:
    return DOC | message_state.fold(DOC, changes)


def visible(doc: dict) -> tuple:
    """What history shows: a deleted message is a tombstone, edited or not."""
    if doc["deleted"]:
        return doc["text"], True, None, []
    reactions = sorted((r["emoji"], sorted(r["users"])) for r in doc.get("reactions") or ())
    return doc["text"], False, doc.get("edit_id"), reactions


def test_a_reaction_counts_once_per_user_and_the_newest_word_wins():
    doc = applied([reaction(1, "u1", "👍", True), reaction(2, "u1", "👍", True),
                   reaction(3, "u2", "👍", True), reaction(4, "u2", "🎉", True)])  # fmt: skip
    assert visible(doc)[3] == [("🎉", ["u2"]), ("👍", ["u1", "u2"])]
    later = doc | message_state.fold(doc, [reaction(5, "u1", "👍", False)])
    assert visible(later)[3] == [("🎉", ["u2"]), ("👍", ["u2"])]
    # An older add arriving late does not undo the newer remove.
    assert message_state.fold(later, [reaction(2, "u1", "👍", True)]) == {}


def test_the_newest_edit_wins_and_an_older_one_never_overwrites_it():
    assert applied([change(2, "edit", "second"), change(1, "edit", "first")])["text"] == "second"
    once = applied([change(2, "edit", "second")])
    assert message_state.fold(once, [change(1, "edit", "first")]) == {}


def test_a_delete_is_final_and_clears_text_and_attachments():
    doc = applied([change(1, "edit", "e"), change(2, "delete"), change(3, "edit", "late")])
    assert (doc["text"], doc["deleted"], doc["attachments"]) == ("", True, [])
    assert message_state.fold(doc, [change(4, "delete"), change(5, "edit", "x")]) == {}


def test_an_edit_by_anyone_but_the_author_is_not_applied():
    assert message_state.fold(DOC, [change(1, "edit", "mine now", user_id="u-other")]) == {}


changes = st.lists(
    st.builds(
        change,
        st.integers(0, 40),
        st.sampled_from(["edit", "edit", "edit", "delete"]),
        st.sampled_from(["a", "b", "c"]),
    )
    | st.builds(
        reaction,
        st.integers(0, 40),
        st.sampled_from(["u1", "u2"]),
        st.sampled_from(["👍", "🎉"]),
        st.booleans(),
    ),
    max_size=12,
)


@given(changes, st.randoms(use_true_random=False))
def test_any_order_and_any_replay_of_the_same_changes_converge(batch, rnd):
    # One id is one change: the stream never gives two entries one id.
    batch = list({c.id: c for c in batch}.values())
    in_order = visible(applied(batch))
    shuffled = batch + batch[: len(batch) // 2]
    rnd.shuffle(shuffled)
    # Applied in pieces, each piece on what the previous ones left.
    doc = dict(DOC)
    for start in range(0, len(shuffled), 3):
        doc |= message_state.fold(doc, shuffled[start : start + 3])
    assert visible(doc) == in_order


def test_a_run_remembers_a_bounded_number_of_messages_least_recently_used_out():
    known = message_state.Known(limit=2)
    for key in ("r/1", "r/2"):
        known.put({"_id": key, "rev": 0})
    assert known.get("r/1") is not None  # now the most recently used
    known.put({"_id": "r/3", "rev": 0})
    assert [known.get(k) is not None for k in ("r/1", "r/2", "r/3")] == [True, False, True]
    # A message with many reactions is read again rather than remembered.
    many = {f"u{i} 👍": "1-1" for i in range(message_state.KNOWN_MAX_REACTIONS + 1)}
    known.put({"_id": "r/1", "rev": 1, "reaction_ids": many})
    assert known.get("r/1") is None
