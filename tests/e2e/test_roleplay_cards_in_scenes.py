"""Roleplay characters as scenes use them: cards of older tools fill in their placeholders.
The real bot against the fake Discord and the fake Gemini."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_roleplay_characters import upload
from tests.e2e.test_roleplay_scenes import World
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


@pytest.fixture
def scene_world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


async def test_a_tavernai_card_greets_and_is_described_with_names_not_placeholders(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Cards of the TavernAI era write <BOT> and <USER> (SillyTavern fills them in, as
    {{char}} and {{user}}): the greeting showed "Hello <USER>, I am <BOT>." as it was."""
    world = scene_world
    await start_bot(ai_settings())
    card = {
        "name": "Aria",
        "description": "<BOT> guards the valley; <user> is a stranger to <Char>.",
        "first_mes": "Hello <USER>, I am <BOT>.",
        "mes_example": "<START>\n<USER>: Who are you?\n<BOT>: The guard.",
    }
    interaction = await discord_fake.invoke_slash(
        guild.text,
        discord_fake.owner,
        "character",
        {"card": upload("aria.json", json.dumps(card).encode(), "application/json")},
        subcommand="import",
    )
    await interaction.wait_response()
    await discord_fake.wait_for(
        lambda: interaction.original and not interaction.original.loading, 10
    )

    await world.slash(member, "start", characters="Aria")
    greeting = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.webhook_id)
    assert greeting.content == f"Hello {member.name}, I am Aria."

    await world.play("hello")
    system = world.streams()[-1].system_text
    assert "Aria guards the valley; the players is a stranger to Aria." in system
    assert "the players: Who are you?\nAria: The guard." in system
    assert "<BOT>" not in system and "<USER>" not in system
