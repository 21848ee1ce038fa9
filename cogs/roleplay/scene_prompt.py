"""The system instruction of a scene turn: the cast, the world, what the story
established, and how to write the script (`cogs.roleplay.script` reads it back).
Each part is bounded, so a scene's request stays a few thousand tokens. No Discord.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cogs.roleplay.characters import Character
from cogs.roleplay.scene_state import State, render
from cogs.roleplay.script import NARRATOR
from utils.text import truncate

DESCRIPTION_CHARS = 2000
DETAIL_CHARS = 600  # personality, scenario
EXAMPLES_CHARS = 1000
WORLD_CHARS = 4000
STATE_CHARS = 8000
# Cards of the TavernAI era write <BOT> (or <CHAR>) and <USER>; SillyTavern fills both.
_PLACEHOLDER = re.compile(r"\{\{(char|user)\}\}|<(bot|char|user)>", re.IGNORECASE)


def fill(text: str, char: str, user: str) -> str:
    """SillyTavern's placeholders filled in, in any case: ``{{char}}`` (``<BOT>``,
    ``<CHAR>``) and ``{{user}}`` (``<USER>``)."""
    return _PLACEHOLDER.sub(lambda m: user if (m[1] or m[2]).lower() == "user" else char, text)


def _portrait(character: Character) -> str:
    profile, name = character.profile, character.name
    parts = [f"## {name}", truncate(profile.description.strip(), DESCRIPTION_CHARS)]
    for label, text, limit in (
        ("Personality", profile.personality, DETAIL_CHARS),
        ("Scenario", profile.scenario, DETAIL_CHARS),
        ("How they talk", profile.example_dialogue, EXAMPLES_CHARS),
    ):
        if text.strip():
            parts.append(f"{label}: {truncate(text.strip(), limit)}")
    return fill("\n".join(p for p in parts if p), name, "the players")


def scene_instruction(
    cast: Sequence[Character], world: str | None, state: State, where: str
) -> str:
    names = ", ".join(c.name for c in cast)
    sections = [
        f"You run a roleplay scene in {where}, as its narrator and as every character in "
        f"it: {names}. The players write in the channel; each of their messages starts with "
        "their display name and a colon. Write the story's next turn after the last message.",
        "\n\n".join(_portrait(c) for c in cast),
    ]
    if world and world.strip():
        sections.append(f"# The world\n{truncate(world.strip(), WORLD_CHARS)}")
    if state:
        sections.append(
            "# What the story has established (stay consistent with it)\n"
            + truncate(render(state), STATE_CHARS)
        )
    sections.append(
        "# How to write\n"
        f"Write the turn as lines that start with the speaker's name and a colon, using "
        f"exactly these names: {names}, and {NARRATOR} for narration and description. "
        f'For example:\n{cast[0].name}: "Over here!" she calls.\n'
        f"{NARRATOR}: The rain gets heavier.\n"
        "A player may address a character by name; that character answers. Never write "
        "lines, actions or thoughts for the players. Keep a turn short: a few lines, the "
        "characters who have a reason to speak. No other text before or after the lines."
    )
    return "\n\n".join(sections)
