"""The bot's one shutdown path: every cog's work is stopped once, in priority order."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

import cogs
from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild


def count_stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each call of a cog's stop handler, by cog name (the real one runs too).

    The classes come from the modules the bot will load: unloading an extension drops
    its modules, so a class imported by an earlier test is not the one a new bot uses.
    Other tests keep the modules they imported (``cogs.music`` and so on are put back).
    """
    calls: list[str] = []
    for module, name, method in (
        ("cogs.admin.maintenance", "Maintenance", "stop"),
        ("cogs.ai.cog", "AI", "stop"),
        ("cogs.music.cog", "Music", "close"),
    ):
        package = module.split(".")[1]
        if hasattr(cogs, package):  # an import now rebinds it: give it back afterwards
            monkeypatch.setattr(cogs, package, getattr(cogs, package))
        cog = getattr(importlib.import_module(module), name)
        original = getattr(cog, method)

        async def stop(self: object, original=original, name: str = cog.__name__) -> None:
            calls.append(name)
            await original(self)

        monkeypatch.setattr(cog, method, stop)
    return calls


async def test_close_stops_each_cog_once_in_priority_order(
    ai_settings: Callable[..., Settings], start_bot: StartBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_stops(monkeypatch)
    bot = await start_bot(ai_settings())
    assert calls == []
    await bot.close()
    # discord.py unloaded the extensions after the shutdown: their cog_unload stopped nothing.
    assert calls == ["Maintenance", "AI", "Music"]
    results = await bot.shutdown_manager.shutdown()  # the close's run, not a new one
    assert list(results) == [
        "maintenance: stop loops",
        "ai: stop replies",
        "music",
        "discord",
        "health server",
        "memory",
        "gemini",
        "database",
        "start-up objects",
    ]
    assert set(results.values()) == {"ok"}
    assert bot.is_closed()
    with pytest.raises(RuntimeError, match="not open"):
        await bot.db.ping()


async def test_a_reloaded_cog_is_stopped_by_the_reload_and_once_at_close(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    ai_settings: Callable[..., Settings],
    start_bot: StartBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_stops(monkeypatch)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload music")
    assert (await discord_fake.wait_for_message(guild.text)).content == "Reloaded `cogs.music`."
    assert calls == ["Music"], "the reload stopped the old cog"

    await bot.close()
    assert calls == ["Music", "Maintenance", "AI"]  # the new Music class is not counted here
    results = await bot.shutdown_manager.shutdown()
    assert list(results)[:3] == ["maintenance: stop loops", "ai: stop replies", "music"]
    assert set(results.values()) == {"ok"}
