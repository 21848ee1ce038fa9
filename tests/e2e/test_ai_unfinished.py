"""Replies the last run left marked as being written, finalised at the next start."""

from __future__ import annotations

from collections.abc import Callable

import discord

from cogs.ai.records import WRITING, Turn
from cogs.ai.streaming import RESTART, RESTART_NOTE, WRITING_MARKER
from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.discord_server import FakeDiscord, FakeGuild


async def test_a_reply_shown_whole_but_stored_as_being_written_is_not_called_cut_off(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Its final text was shown (only storing it failed): the next start finalises it
    as a whole reply, not "cut off by a restart"; one left writing still is."""
    settings = ai_settings()
    bot = await start_bot(settings, extensions=[])
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    whole = await channel.send("All of it")
    cut = await channel.send("Half" + WRITING_MARKER)
    for message, stored in ((whole, "All of"), (cut, "Half")):
        turn = Turn("model", discord_fake.bot_user.id, "ai", stored, message.id, WRITING)
        await bot.chats.add_turns(guild.id, guild.text.id, [turn])
    await bot.close()

    bot = await start_bot(settings, extensions=["cogs.ai"])
    await eventually(lambda: bot.chats.unfinished(10, lambda _: True), equals=[])
    turns = await bot.chats.turns(guild.text.id)
    assert [t.incomplete for t in turns] == [None, RESTART]
    texts = [m.content for m in discord_fake.messages_in(guild.text)]
    assert texts == ["All of it", "Half" + RESTART_NOTE]
