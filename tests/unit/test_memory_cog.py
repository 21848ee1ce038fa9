"""The /memory commands' parsing and options, without Discord."""

from __future__ import annotations

import pytest

from cogs.memory.cog import model_shown
from cogs.memory.targets import parse_target
from utils.errors import BotError
from utils.memory.facts import MAX_FACT_CHARS, fact_text


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


def test_a_fact_is_measured_on_one_line() -> None:
    """Runs of spaces and line breaks count as one space, as the fact is stored."""
    fact = "a" * (MAX_FACT_CHARS - 2) + " \n\n  " + "b"
    assert fact_text(fact) == "a" * (MAX_FACT_CHARS - 2) + " b"
    with pytest.raises(BotError, match="at most 500 characters"):
        fact_text(fact + "c")


@pytest.mark.parametrize(
    "fact",
    ["\u200b", "\u200b \u200d\ufeff", "\u2060\n\u00ad", "\u3164", "\u3164 \u2800\uffa0"],
)
def test_a_fact_of_only_invisible_characters_is_nothing_to_remember(fact: str) -> None:
    """Zero-width and other format characters show as nothing: a blank memory; so do
    the Hangul fillers and the blank Braille pattern people send as blank messages."""
    with pytest.raises(BotError, match=r"There is nothing to remember in that\."):
        fact_text(fact)


@pytest.mark.parametrize(
    ("model", "shown"),
    [
        ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
        ("sentence-transformers/all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"),
        ("/home/gembot/models/e5-small", "e5-small"),
        ("/srv/models/e5-small/", "e5-small"),
        ("~/models/e5-small", "e5-small"),
        ("./models/e5-small", "e5-small"),
        ("../models/e5-small", "e5-small"),
    ],
)
def test_memory_stats_names_a_local_model_without_its_path(model: str, shown: str) -> None:
    """Server managers see the model, not where the bot's host keeps it."""
    assert model_shown(model) == shown
