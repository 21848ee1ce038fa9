"""Music and memory answers in a channel where the bot may not embed: Discord drops the
embeds of its messages there and refuses the empty rest, so prefix commands answer in
text, their buttons kept and turning the text."""

from __future__ import annotations

from collections.abc import Callable

import discord

from bot import Bot
from config import Settings
from tests.conftest import StartBot
from tests.e2e.music_world import World, button
from tests.fakes.discord_models import DEFAULT_PERMS
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser

EMBED_LINKS = discord.Permissions(embed_links=True).value


async def deny_embeds(discord_fake: FakeDiscord, guild: FakeGuild, bot: Bot) -> None:
    """Take away the bot's Embed Links in the guild's text channel."""
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)  # no administrator
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=EMBED_LINKS, member=True)

    def denied() -> bool:
        channel = bot.get_channel(guild.text.id)
        assert isinstance(channel, discord.TextChannel)
        return not channel.permissions_for(channel.guild.me).embed_links

    await discord_fake.wait_for(denied)


async def answer(
    discord_fake: FakeDiscord, guild: FakeGuild, user: FakeUser, text: str, starts: str
) -> FakeMessage:
    """Send ``text`` in the guild's text channel; the bot's answer, starting with ``starts``."""
    after = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, user, text)
    return await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith(starts), after=after
    )


async def test_music_prefix_commands_answer_in_text_with_their_buttons(world: World) -> None:
    """!nowplaying, !queue, !history and !playlist list: text with their buttons, and a
    press turns the text, not an embed under it."""
    discord_fake, guild, member = world.discord, world.guild, world.member
    await deny_embeds(discord_fake, guild, await world.start())
    for number in range(12):  # more than a page of queue
        await world.slash("play", query=world.media.tone(300 + number, 30, "ogg"))

    now = await answer(discord_fake, guild, member, "!nowplaying", "**Now playing**\n")
    assert "tone-300hz-30s" in now.content and not now.embeds
    pressed = await world.press(now, "toggle")
    await pressed.wait_response()
    assert now.content.startswith("**Paused**\n") and not now.embeds
    assert button(now, "toggle"), "the buttons stay"

    queue = await answer(discord_fake, guild, member, "!queue", "**Queue**\n")
    assert "Page 1/2" in queue.content and not queue.embeds
    next_ = queue.components[0]["components"][1]["custom_id"]
    await (await discord_fake.click_button(queue, next_, member)).wait_response()
    assert "Page 2/2" in queue.content and not queue.embeds

    history = await answer(discord_fake, guild, member, "!history", "**Recently played**\n")
    assert "tone-300hz-30s" in history.content and history.components

    saved = await discord_fake.invoke_slash(
        guild.text, member, "playlist", {"name": "Mix"}, subcommand=["save"]
    )
    await world.reply(saved)
    listing = await answer(discord_fake, guild, member, "!playlist list", "**Your playlists**\n")
    assert listing.content.startswith("**Your playlists**\n• **Mix** (12 tracks)")


async def test_memory_stats_answers_in_text(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    await deny_embeds(discord_fake, guild, bot)
    stats = await answer(
        discord_fake, guild, discord_fake.owner, "!memory stats", "**Memory in this server**\n"
    )
    assert stats.content.startswith("**Memory in this server**\n**Memories**: 0")
    assert "**Embedding model**: `hashing`" in stats.content


async def test_the_track_s_own_now_playing_message_is_text_that_moves(world: World) -> None:
    """The message a track posts as it starts: text with its buttons, edited as text by
    the progress bar and by a control used elsewhere."""
    discord_fake, guild = world.discord, world.guild
    await deny_embeds(discord_fake, guild, await world.start(music_progress_interval=1.0))
    await world.slash("play", query=world.media.tone(440, 30, "ogg"))
    card = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("**Now playing**\n")
    )
    assert "tone-440hz-30s" in card.content and button(card, "toggle")
    await discord_fake.wait_for(lambda: len(card.history) >= 2)  # the progress bar moved
    assert card.content.startswith("**Now playing**\n") and not card.embeds
    assert (await world.slash("pause")).startswith("⏸️ Paused")
    await discord_fake.wait_for(lambda: card.content.startswith("**Paused**\n"))
    assert not card.embeds and button(card, "toggle")
