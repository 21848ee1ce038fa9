"""The /memory commands' parsing and options, without Discord."""

from __future__ import annotations

import pytest

from cogs.memory.cog import MemoryCog, parse_target
from utils.errors import BotError
from utils.memory.service import MAX_FACT_CHARS, fact_text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("12", 12),
        ("#12", 12),
        (" #7 ", 7),
        ("all", None),
        ("ALL", None),
        ("9223372036854775807", 2**63 - 1),  # the largest id SQLite and PostgreSQL store
    ],
)
def test_a_number_or_all_is_understood(target: str, expected: int | None) -> None:
    assert parse_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "²",  # a digit to str.isdigit, not to int()
        "١٢",  # Arabic-Indic digits: int() takes them, but no one means them
        "99999999999999999999",  # past 64 bits: SQLite and asyncpg fail on it
        "9223372036854775808",
        "1" * 5000,  # past the digits int() converts at all
        "",
        "#",
        "-3",
        "+3",
        "1_000",
        "twelve",
    ],
)
def test_anything_else_gets_the_usage(target: str) -> None:
    with pytest.raises(BotError, match="its number from `/memory show`, or `all`"):
        parse_target(target)


def test_the_fact_to_add_is_no_longer_than_a_memory_holds() -> None:
    """Discord refuses a longer one as it is typed, before it costs any of the budget."""
    [fact] = MemoryCog.memory_add.app_command.parameters
    assert (fact.min_value, fact.max_value) == (1, MAX_FACT_CHARS)


@pytest.mark.parametrize(
    "fact",
    ["\u200b", "\u200b \u200d\ufeff", "\u2060\n\u00ad", "\u3164", "\u3164 \u2800\uffa0"],
)
def test_a_fact_of_only_invisible_characters_is_nothing_to_remember(fact: str) -> None:
    """Zero-width and other format characters show as nothing: a blank memory; so do
    the Hangul fillers and the blank Braille pattern people send as blank messages."""
    with pytest.raises(BotError, match=r"There is nothing to remember in that\."):
        fact_text(fact)
