"""`/stats` answers the interaction before it reads the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import StartBot
from tests.fakes.discord_server import DEFERRED_CHANNEL_MESSAGE, FakeDiscord, FakeGuild, FakeUser
from utils.db import Params, Row


@pytest.mark.backends("sqlite")  # storage is beside the point: its reads are held
async def test_stats_defers_before_it_reads_the_database(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow database (the tokens of today) left the slash command unanswered past
    Discord's three seconds: "The application did not respond"."""
    bot = await start_bot()
    read = bot.db.fetchall
    reading, release = asyncio.Event(), asyncio.Event()

    async def held(sql: str, params: Params = ()) -> list[Row]:
        if "ai_usage" in sql:
            reading.set()
            await release.wait()
        return await read(sql, params)

    monkeypatch.setattr(bot.db, "fetchall", held)
    interaction = await discord_fake.invoke_slash(guild.text, member, "stats")
    await asyncio.wait_for(reading.wait(), 10)
    response: dict[str, Any] = await interaction.wait_response()
    assert response["type"] == DEFERRED_CHANNEL_MESSAGE, "answered while the database is held"
    release.set()
    (answer,) = await discord_fake.wait_for(lambda: interaction.followups, timeout=10)
    assert answer.embeds[0]["title"] == "Bot stats"
    fields = {field["name"]: field["value"] for field in answer.embeds[0]["fields"]}
    assert fields["AI tokens today"] == "0"
