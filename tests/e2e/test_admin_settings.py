"""`/settings prefix` answers the interaction before it writes to the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import StartBot
from tests.fakes.discord_server import DEFERRED_CHANNEL_MESSAGE, FakeDiscord, FakeGuild
from utils.db import Params


@pytest.mark.backends("sqlite")  # storage is beside the point: its write is held
async def test_setting_the_prefix_defers_before_it_writes_to_the_database(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database busy with another write (SQLite has one writer) left the slash command
    unanswered past Discord's three seconds: "The application did not respond"."""
    bot = await start_bot()
    write = bot.db.execute
    writing, release = asyncio.Event(), asyncio.Event()

    async def held(sql: str, params: Params = ()) -> int:
        if "guild_settings" in sql:
            writing.set()
            await release.wait()
        return await write(sql, params)

    monkeypatch.setattr(bot.db, "execute", held)
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "settings", {"prefix": "?"}, subcommand="prefix"
    )
    await asyncio.wait_for(writing.wait(), 10)
    response: dict[str, Any] = await interaction.wait_response()
    assert response["type"] == DEFERRED_CHANNEL_MESSAGE, "answered while the database is held"
    assert interaction.ephemeral
    release.set()
    (answer,) = await discord_fake.wait_for(lambda: interaction.followups, timeout=10)
    assert answer.content == "Prefix set to `?`."
    assert bot.guild_settings.prefix(guild.id) == "?"
