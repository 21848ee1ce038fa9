"""The facts people tell the bot that show as nothing (`utils.memory.facts.fact_text`)."""

from __future__ import annotations

import pytest

from utils.errors import BotError
from utils.memory.facts import fact_text


@pytest.mark.parametrize("fact", ["\ufe0f", "\u034f\ufe0e", "\U000e0100 \U000e01ef"])
def test_variation_selectors_alone_are_nothing_to_remember(fact: str) -> None:
    """A variation selector only picks how the character before it looks (the combining
    grapheme joiner joins nothing): alone, they show as nothing, a blank memory."""
    with pytest.raises(BotError, match=r"There is nothing to remember in that\."):
        fact_text(fact)


def test_an_emoji_with_its_variation_selector_is_remembered() -> None:
    assert fact_text("I love \u2764\ufe0f") == "I love \u2764\ufe0f"


@pytest.mark.parametrize("fact", ["\x01\x02", "\x1b \x7f", "\x00", "\x9b\x9c"])
def test_control_characters_alone_are_nothing_to_remember(fact: str) -> None:
    """Control characters (those not spaces or line breaks) print as nothing either."""
    with pytest.raises(BotError, match=r"There is nothing to remember in that\."):
        fact_text(fact)
