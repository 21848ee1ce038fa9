"""Slash commands that read or write the database answer the interaction first: a busy
database (SQLite's one writer held by another write, a PostgreSQL pool in use) left
them unanswered past Discord's three seconds: "The application did not respond"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import (
    DEFERRED_CHANNEL_MESSAGE,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeUser,
)
from utils.db import Params, Row

DISCORD_WAITS = 3  # seconds Discord gives an interaction's first answer

# (command, subcommand, options, answered only to the asker, what the answer starts with)
Asked = tuple[str, list[str] | None, dict[str, Any], bool, str]

READS: list[Asked] = [
    ("history", None, {}, False, "Nothing has been played here yet."),
    ("playlist", ["list"], {}, False, "You have no playlists here"),
    ("character", ["list"], {}, False, "Characters (2/"),
    ("character", ["show"], {"name": "Hana"}, False, "Hana"),
    ("ai", ["status"], {}, True, "AI status"),
    ("ai", ["audit"], {}, True, "What AI tools did here"),
    ("ai", ["persona", "show"], {}, True, "**"),
    ("scene", ["state", "show"], {}, False, "Scene state"),
]
WRITES: list[Asked] = [
    ("ai", ["reset"], {}, False, "Forgot this channel's conversation"),
    ("ai", ["autorespond"], {"mode": "on"}, False, "Auto-respond is on in this channel."),
    ("ai", ["safety"], {"level": "high"}, False, "The safety filter here blocks"),
    ("ai", ["tools"], {"family": "search", "mode": "off"}, True, "AI tools in this server"),
    ("ai", ["model"], {"name": "default"}, False, "This server uses the default model"),
    ("ai", ["persona", "set"], {"name": "pirate"}, False, "This channel now talks with"),
    ("ai", ["prompt"], {"text": "Be brief."}, True, "Custom prompt set for this channel."),
    ("scene", ["add"], {"character": "Kai"}, False, "**Kai** joins the scene."),
    (
        "scene",
        ["state", "set"],
        {"entity": "Kai", "fact": "location", "value": "the inn"},
        False,
        "Noted: **Kai**, location: the inn",
    ),
    ("scene", ["remove"], {"character": "Kai"}, False, "**Kai** leaves the scene."),
    ("scene", ["world"], {"text": "A port town"}, False, "The server's world is set."),
    ("scene", ["end"], {}, False, "🎬 The scene has ended."),
]


@pytest.mark.backends("sqlite")  # storage is beside the point: its reads and writes are held
async def test_commands_that_read_or_write_answer_while_the_database_is_busy(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = await start_bot(ai_settings())
    owner = discord_fake.owner

    async def ask(
        user: FakeUser, name: str, sub: list[str] | None, options: dict[str, Any]
    ) -> FakeInteraction:
        return await discord_fake.invoke_slash(guild.text, user, name, options, subcommand=sub)

    async def answer(interaction: FakeInteraction) -> str:
        (said,) = await discord_fake.wait_for(lambda: interaction.followups, timeout=10)
        return said.content or said.embeds[0]["title"]

    for name in ("Hana", "Kai"):
        created = await ask(owner, "character", ["create"], {"name": name, "description": "A fox"})
        assert (await answer(created)).startswith(f"Created **{name}**")
    started = await ask(owner, "scene", ["start"], {"characters": "Hana"})
    assert "A scene begins with **Hana**" in await answer(started)

    read = bot.db.fetchall
    free = asyncio.Event()

    async def held(sql: str, params: Params = ()) -> list[Row]:
        await free.wait()
        return await read(sql, params)

    monkeypatch.setattr(bot.db, "fetchall", held)
    for name, sub, options, ephemeral, expected in READS:
        free.clear()  # another client holds the database
        interaction = await ask(owner, name, sub, options)
        response = await interaction.wait_response(DISCORD_WAITS)
        assert response["type"] == DEFERRED_CHANNEL_MESSAGE, (name, sub)
        assert interaction.ephemeral == ephemeral, (name, sub)
        free.set()
        assert (await answer(interaction)).startswith(expected), (name, sub)

    for name, sub, options, ephemeral, expected in WRITES:
        async with bot.db.transaction():  # another write, under way
            interaction = await ask(owner, name, sub, options)
            response = await interaction.wait_response(DISCORD_WAITS)
            assert response["type"] == DEFERRED_CHANNEL_MESSAGE, (name, sub)
            assert interaction.ephemeral == ephemeral, (name, sub)
        assert (await answer(interaction)).startswith(expected), (name, sub)
