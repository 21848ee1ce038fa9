"""Request building: summary first, older turns as one transcript part, recent turns as turns."""

from __future__ import annotations

import itertools

from cogs.ai.personas import parse_persona
from cogs.ai.prompting import RECENT_TURNS, UserInput, build_contents, system_instruction
from cogs.ai.store import Turn


def turns(n: int) -> list[Turn]:
    return [
        Turn(i, "user" if i % 2 == 0 else "model", 7, "alice", f"text {i}", 2, 0.0)
        for i in range(n)
    ]


def test_short_history_goes_turn_by_turn() -> None:
    contents = build_contents(None, turns(RECENT_TURNS), UserInput("bob", "hi"))
    assert [c["role"] for c in contents] == ["user", "model"] * (RECENT_TURNS // 2) + ["user"]
    assert contents[0]["parts"][0]["text"] == "alice: text 0"
    assert contents[1]["parts"][0]["text"] == "text 1"
    assert contents[-1]["parts"][0]["text"] == "bob: hi"


def test_long_history_packs_older_turns_after_the_summary() -> None:
    contents = build_contents("they met", turns(30), UserInput("bob", "hi"))
    # Same-role neighbours are merged, their texts joined into one part: the opening
    # ends with the first recent turn (a user's).
    opening, first_recent = contents[0]["parts"][0]["text"].rsplit("\n\n", 1)
    assert opening.startswith("(Summary of the earlier conversation: they met)")
    assert "alice: text 0\nYou: text 1" in opening
    assert f"text {30 - RECENT_TURNS - 1}" in opening
    assert f"text {30 - RECENT_TURNS}" not in opening
    assert first_recent == f"alice: text {30 - RECENT_TURNS}"
    assert [len(c["parts"]) for c in contents] == [1] * len(contents)
    roles = [c["role"] for c in contents]
    assert all(a != b for a, b in itertools.pairwise(roles)) and roles[-1] == "user"


def test_custom_prompt_replaces_the_persona() -> None:
    persona = parse_persona("pirate", "# Captain\nA pirate.\n\nSpeak like a pirate.")
    assert persona.title == "Captain" and persona.description == "A pirate."
    assert system_instruction(persona, None, "#general").startswith("A pirate.")
    custom = system_instruction(persona, "Be brief.", "#general")
    assert custom.startswith("Be brief.") and "pirate" not in custom


def test_a_reply_that_stopped_early_says_so_in_the_context() -> None:
    history = [
        Turn(1, "user", 7, "alice", "tell a story", 2, 0.0),
        Turn(2, "model", 0, "assistant", "Once upon", 2, 0.0, "restart"),
        Turn(3, "user", 7, "alice", "and the poem?", 2, 0.0),
        Turn(4, "model", 0, "assistant", "Roses are", 2, 0.0, "length"),
    ]
    contents = build_contents(None, history, UserInput("alice", "go on"))
    opening = contents[0]["parts"][0]["text"]
    assert "You: Once upon\n[this reply was cut off: restart]" in opening
    assert contents[-2] == {
        "role": "model",
        "parts": [{"text": "Roses are\n[this reply was cut off: length]"}],
    }
