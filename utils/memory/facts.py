"""The facts people tell the bot (`/memory add`, the AI's remember tool): which are
refused, and how one is stored."""

from __future__ import annotations

import unicodedata

from utils.errors import BotError

MAX_FACT_CHARS = 500
# Shown as nothing though not format characters: Hangul fillers, the blank Braille cell,
# the combining grapheme joiner and the variation selectors (they only pick how the
# character before them looks).
_BLANK = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f"
    + "".join(map(chr, [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]))
)


def fact_text(text: str) -> str:
    """A fact someone tells the bot, as it is stored (on one line); refused (BotError)
    if it shows as nothing (zero-width spaces, control characters, _BLANK...) or is over
    MAX_FACT_CHARS."""
    text = " ".join(text.split())
    if all(
        char == " " or char in _BLANK or unicodedata.category(char) in ("Cf", "Cc") for char in text
    ):
        raise BotError("There is nothing to remember in that.")
    if len(text) > MAX_FACT_CHARS:
        raise BotError(f"A memory can be at most {MAX_FACT_CHARS} characters.")
    return text
