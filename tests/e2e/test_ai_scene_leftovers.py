"""How the AI chat answers in roleplay scenes when Discord fails: a connection reset while
a turn is set up, and a character's reply cut off by a crash. The real bot against the
fake Discord and the fake Gemini."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import discord
import pytest

from cogs.ai.records import WRITING, Turn
from cogs.ai.replies import SORRY
from cogs.ai.streaming import RESTART, RESTART_NOTE, WRITING_MARKER
from cogs.roleplay.webhooks import WebhookSender
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_roleplay_scenes import World, scenes
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.text import DISCORD_LIMIT


@pytest.fixture
def scene_world(
    discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild, member: FakeUser
) -> World:
    return World(discord_fake, gemini_fake, guild, member)


async def test_a_connection_reset_renewing_an_avatar_still_plays_the_turn(
    scene_world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Renewing a character's expired avatar link at the start of a turn meets a
    connection reset: like a Discord error, the turn plays (without that avatar) and a
    warning is logged, rather than "something went wrong"."""
    world = scene_world
    bot = await start_bot(ai_settings())
    await world.character("Aria")
    await world.character("Bren")
    await world.slash(member, "start", characters="Aria, Bren")
    store = scenes(bot).characters
    aria = await store.get(guild.id, "Aria")
    assert aria is not None and aria.link is not None
    await store.set_link(aria, replace(aria.link, url=aria.link.url + "?ex=1"))  # expired
    renew = ("GET", f"/channels/{aria.link.channel_id}/messages/{aria.link.message_id}")
    discord_fake.dropping.add(renew)

    with caplog.at_level(logging.WARNING):
        lines = await world.play("hello")
    assert [m.content for m in lines][-1] == "The fire crackles."
    assert all(m.content != SORRY for m in discord_fake.messages_in(guild.text))
    assert f"could not renew the avatar of character {aria.id}" in caplog.text
    assert "could not direct the reply" not in caplog.text


async def test_a_characters_reply_cut_off_by_a_crash_goes_on_as_that_character(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A character's last message was full when the crash came: the restart note that no
    longer fits in it follows under the character's name, not the bot's."""
    settings = ai_settings()
    bot = await start_bot(settings, extensions=[])
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    words = "The lantern swings in the wind. " * 70
    shown = words[: DISCORD_LIMIT - len(WRITING_MARKER)].rstrip()
    spoken = await WebhookSender(bot).send(
        channel, shown + WRITING_MARKER, name="Alice", avatar_url=None
    )
    turn = Turn("model", discord_fake.bot_user.id, "Alice", shown, spoken.id, WRITING)
    await bot.chats.add_turns(guild.id, channel.id, [turn])
    await bot.close()

    bot = await start_bot(settings, extensions=["cogs.ai"])
    first, rest = await discord_fake.wait_for(
        lambda: (messages := discord_fake.messages_in(guild.text))[1:] and messages, 10
    )
    assert first.id == spoken.id and not first.content.endswith(WRITING_MARKER)
    assert (first.content + rest.content).endswith(RESTART_NOTE.strip())
    assert rest.webhook_id == first.webhook_id is not None
    assert rest.author.name == "Alice"
    assert rest.allowed_mentions == {"parse": []}
    await eventually(lambda: bot.chats.unfinished(10, lambda _: True), equals=[])
    turns = await bot.chats.turns(channel.id)
    assert [t.incomplete for t in turns] == [RESTART]
