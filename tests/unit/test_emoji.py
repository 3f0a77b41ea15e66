"""The reaction rule: one Unicode emoji, bounded; never text or a shortcode."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora.emoji import check_emoji
from aurora.errors import ValidationError

ACCEPTED = ["👍", "👍🏽", "❤️", "❤", "🏳️‍🌈", "🇫🇷", "1️⃣", "#️⃣", "👨‍👩‍👧‍👦", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "⭐", "✅", "🫠"]
REFUSED = [":thumbsup:", "+1", "ok", "a", "<b>", "", " ", "👍 ", "1", "#", "\u200d", "\ufe0f",
           "👍" * 17, "é", "中", "$gt", "👍.", None, 5, ["👍"]]  # fmt: skip


@pytest.mark.parametrize("emoji", ACCEPTED)
def test_an_emoji_is_a_reaction(emoji):
    assert check_emoji(emoji) == emoji


@pytest.mark.parametrize("value", REFUSED)
def test_text_shortcodes_and_oversized_sequences_are_refused(value):
    with pytest.raises(ValidationError) as refused:
        check_emoji(value)
    assert refused.value.code == "invalid_emoji"


@given(st.text(max_size=20))
def test_any_text_is_an_emoji_or_a_validation_error_never_a_crash(value):
    try:
        check_emoji(value)
    except ValidationError as exc:
        assert exc.code == "invalid_emoji"
