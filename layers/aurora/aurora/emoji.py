"""The reaction rule: one Unicode emoji, as people type or pick it.

Bounded and checkable without an emoji database: at most 16 code points and
64 bytes (the longest family and flag sequences fit), every code point from
the emoji blocks or an emoji component (zero-width joiner, variation
selectors, skin tones, keycap, tag characters), at least one of them a
picture. So `👍`, `👍🏽`, `🏳️‍🌈`, `🇫🇷` and `1️⃣` are reactions; `:thumbsup:`,
`ok` and `<b>` are not.
"""

from __future__ import annotations

from aurora.errors import ValidationError

MAX_CODE_POINTS = 16
MAX_BYTES = 64

# Pictures: the emoji blocks, and the older symbol ranges emoji come from.
_PICTURES = (
    (0x1F000, 0x1FAFF),  # mahjong .. symbols and pictographs extended-A (flags, faces, ...)
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats (☀ ✅ ❤)
    (0x2300, 0x23FF),  # miscellaneous technical (⌚ ⏰)
    (0x2B00, 0x2BFF),  # arrows and stars (⭐ ⬆)
    (0x2190, 0x21FF),  # arrows (↔ ↩)
    (0x25A0, 0x25FF),  # geometric shapes (▶ ◀)
    (0x2900, 0x297F),  # supplemental arrows (⤴)
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x24C2, 0x24C2),
)  # fmt: skip
# Components: only inside a sequence with a picture (or a keycap's base).
_COMPONENTS = (
    (0x200D, 0x200D),  # zero-width joiner
    (0xFE0E, 0xFE0F),  # variation selectors (text / emoji presentation)
    (0x20E3, 0x20E3),  # combining enclosing keycap
    (0xE0020, 0xE007F),  # tags (subdivision flags)
)
_KEYCAP_BASES = frozenset("0123456789#*")
_KEYCAP = "\u20e3"


def _within(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def check_emoji(value: object) -> str:
    """The emoji, if `value` is one by the rule above; ValidationError
    `invalid_emoji` otherwise."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CODE_POINTS
        or len(value.encode("utf-8", "surrogatepass")) > MAX_BYTES
    ):
        raise ValidationError(
            f"A reaction is one emoji of at most {MAX_CODE_POINTS} code points",
            code="invalid_emoji",
        )
    keycap = _KEYCAP in value and value[0] in _KEYCAP_BASES
    pictures = 0
    for i, char in enumerate(value):
        code = ord(char)
        if _within(code, _PICTURES):
            pictures += 1
        elif _within(code, _COMPONENTS) or (keycap and i == 0):
            continue
        else:
            raise ValidationError(
                "A reaction is a Unicode emoji (👍), not text or a shortcode",
                code="invalid_emoji",
            )
    if not pictures and not keycap:
        raise ValidationError("A reaction is a Unicode emoji (👍)", code="invalid_emoji")
    return value
