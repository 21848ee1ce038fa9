"""Music end to end when voice goes wrong: dropped connections, a new voice server,
reconnects that keep failing, a restart into a channel it can't (or may no longer)
join, a moderator's disconnect, missing voice libraries.

The fake voice server drops the bot's connection with Discord's close codes or
loses the network; the audio it decodes shows whether the track went on from
where it was (about one track's worth of frames in all) or started over.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from typing import Any, cast

import discord.voice_client
import pytest
from discord.ext import commands

from cogs.music.cog import Music
from tests.e2e.music_world import FRAMES_PER_SECOND, World, pitch, saved_queue
from tests.fakes.discord_server import FakeDiscord, FakeMessage
from utils.db import Params, Reads, Row

# Voice connections that drop and come back; storage is beside the point.
pytestmark = pytest.mark.backends("sqlite")

SECONDS = 4
TEXT_ONLY = discord.Permissions(view_channel=True, send_messages=True, embed_links=True).value
CONNECT = discord.Permissions(connect=True).value


async def play_a_while(world: World) -> int:
    """Start a tone and let a second of it play; the voice server's identify count."""
    await world.slash("play", query=world.media.tone(440, SECONDS, "ogg"))
    await world.wait_frames(FRAMES_PER_SECOND)
    return world.voice.identifies


def assert_played_once_through(world: World) -> None:
    """Neither cut short nor started over: one track's worth of its tone."""
    heard = len(world.frames())
    assert abs(heard - SECONDS * FRAMES_PER_SECOND) < 25, heard
    assert abs(pitch(world.frames()) - 440) < 15


@pytest.mark.parametrize("drop", ["4006", "4015", "network"])
async def test_a_dropped_connection_resumes_the_track_where_it_was(
    world: World, caplog: pytest.LogCaptureFixture, drop: str
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.music")
    await world.start()
    identifies = await play_a_while(world)
    if drop == "network":
        world.voice.cut(world.guild.id)
    else:
        await world.voice.drop(world.guild.id, code=int(drop))
    await world.discord.wait_for(lambda: world.voice.identifies > identifies, 15)
    await world.wait_message("The queue is finished", within=20)
    assert_played_once_through(world)
    assert "lost the voice connection" not in str(world.discord.messages_in(world.guild.text))


async def test_a_new_voice_server_is_followed_without_a_break_in_the_queue(
    world: World, discord_fake: FakeDiscord
) -> None:
    await world.start()
    identifies = await play_a_while(world)
    await discord_fake.change_voice_server(world.guild)
    await discord_fake.wait_for(lambda: world.voice.identifies > identifies, 10)
    await world.wait_message("The queue is finished", within=15)
    assert_played_once_through(world)


async def test_after_a_gateway_session_that_could_not_resume_it_still_leaves_when_alone(
    world: World, discord_fake: FakeDiscord
) -> None:
    bot = await world.start(music_alone_timeout=0.5)
    await world.slash("play", query=world.media.tone(440, 8, "ogg"))
    await world.wait_frames(5)
    before = bot.get_guild(world.guild.id)
    await discord_fake.invalidate_session()  # a fresh READY: every guild and channel anew

    def renewed() -> bool:
        guild = bot.get_guild(world.guild.id)
        return guild is not before and guild is not None and not guild.unavailable

    await discord_fake.wait_for(renewed, 15)
    await discord_fake.leave_voice(world.member, world.guild)
    await world.wait_message("Nobody is listening any more")


async def test_reconnects_that_keep_failing_end_with_a_message(
    world: World, discord_fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.music")
    await world.start(music_voice_reconnects=3, music_voice_reconnect_wait=1.0)
    await play_a_while(world)
    world.voice.refuse(world.guild.id)
    await world.voice.drop(world.guild.id, code=4006)
    await discord_fake.wait_for(lambda: "rejoining voice" in caplog.text, 10)
    assert await world.slash("play", query=world.media.tone(660, 1, "ogg")) == (
        "I lost the voice connection for a moment; try again in a few seconds."
    ), "a /play meanwhile keeps the queue that is being recovered"
    await world.wait_message("I lost the voice connection and couldn't get it back", within=20)
    bot, guild = discord_fake.bot_user, world.guild
    await discord_fake.wait_for(lambda: discord_fake.voice_channel_of(bot, guild) is None)

    world.voice.refuse(world.guild.id, refused=False)
    assert (await world.slash("play", query=world.media.tone(880, 1, "ogg"))).startswith("▶️")
    await world.wait_message("The queue is finished")


@pytest.mark.slow  # ~30 s: discord.py tries the refused handshake five times, 25 s apart in all
async def test_a_restart_that_cannot_rejoin_voice_keeps_the_queue(world: World) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await play_a_while(world)
    await bot.close()

    world.voice.refuse(world.guild.id)  # the voice server turns the bot away after the restart
    bot = await world.start(settings)
    await world.wait_message("I couldn't rejoin", within=45)
    assert await saved_queue(bot) == [f"tone-440hz-{SECONDS}s"]

    # A /play that fails (a dead link) joins and leaves again: it plays nothing, so the
    # kept queue is neither overwritten by its empty player nor deleted when it leaves.
    world.voice.refuse(world.guild.id, refused=False)
    dead = world.media.url("no-such-file.ogg")
    assert await world.slash("play", query=dead) == "I couldn't load that link."
    await world.discord.wait_for(
        lambda: world.discord.voice_channel_of(world.discord.bot_user, world.guild) is None
    )
    assert await saved_queue(bot) == [f"tone-440hz-{SECONDS}s"]
    await bot.close()

    await world.start(settings)
    await world.wait_message(f"Back after a restart: resuming tone-440hz-{SECONDS}s at 0:01")


async def test_a_restart_during_an_outage_of_the_server_resumes_once_the_server_is_back(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.music")
    settings = world.settings()
    bot = await world.start(settings)
    await play_a_while(world)
    await bot.close()

    world.discord.start_outage(world.guild)
    bot = await world.start(settings)
    guild = bot.get_guild(world.guild.id)
    assert guild is not None and guild.unavailable
    await world.discord.wait_for(lambda: f"music in guild {guild.id}" in caplog.text)  # seen
    world.discord.end_outage(world.guild)
    await world.wait_message(f"Back after a restart: resuming tone-440hz-{SECONDS}s at 0:01")
    await world.wait_message("The queue is finished", within=15)


async def test_a_restart_into_a_channel_it_may_no_longer_join_says_why_and_keeps_the_queue(
    world: World,
) -> None:
    """Played from a thread, archived meanwhile (so not in discord.py's cache): the notes
    go there."""
    settings = world.settings()
    bot = await world.start(settings)
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)
    played = await world.discord.invoke_slash(
        thread, world.member, "play", {"query": world.media.tone(440, SECONDS, "ogg")}
    )
    await world.reply(played)
    await world.wait_frames(FRAMES_PER_SECOND)
    await bot.close()
    thread.archived = True
    # Meanwhile the bot became an ordinary member, and nobody may connect to the channel.
    world.guild.add_member(world.discord.bot_user, permissions=TEXT_ONLY)
    voice = world.guild.voice
    world.guild.set_overwrite(voice, world.guild.id, deny=CONNECT, member=False)

    def in_thread(text: str) -> Awaitable[FakeMessage]:
        return world.discord.wait_for_message(thread, predicate=lambda m: text in m.content)

    bot = await world.start(settings)
    note = await in_thread("I couldn't rejoin")
    assert note.content == (
        f"⚠️ I couldn't rejoin <#{voice.id}> after a restart: I need the Connect and Speak "
        f"permissions in <#{voice.id}>. The queue is kept for my next start, unless you play "
        "something now."
    )
    assert await saved_queue(bot) == [f"tone-440hz-{SECONDS}s"]
    assert world.discord.voice_state_updates[-1]["channel_id"] is None, "it did not try to join"
    await bot.close()

    assert not thread.archived, "the note unarchived it"
    world.guild.set_overwrite(voice, world.guild.id, member=False)  # Connect is back
    thread.archived = True
    await world.start(settings)
    await in_thread(f"Back after a restart: resuming tone-440hz-{SECONDS}s at 0:01")


async def test_music_messages_reach_a_thread_archived_while_it_plays(world: World) -> None:
    """An archived thread drops out of discord.py's cache; the bot's next message there
    unarchives it, as on Discord, and only then is the card before it deleted (nothing
    in an archived thread can be)."""
    bot = await world.start()
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)

    def card(text: str) -> Awaitable[FakeMessage]:
        return world.discord.wait_for_message(
            thread, predicate=lambda m: bool(m.components and text in str(m.embeds))
        )

    async def archive() -> None:
        thread.archived = True
        world.guild.channel_updated(thread)
        await world.discord.wait_for(lambda: bot.get_channel(thread.id) is None)

    for seconds in (1, 2):  # the second long enough to be archived under while it plays
        played = await world.discord.invoke_slash(
            thread, world.member, "play", {"query": world.media.tone(440, seconds, "ogg")}
        )
        await world.reply(played)
    first = await card("tone-440hz-1s")
    await archive()
    second = await card("tone-440hz-2s")
    await world.discord.wait_for(lambda: first.deleted)
    await archive()
    await world.discord.wait_for_message(
        thread, predicate=lambda m: "The queue is finished" in m.content
    )
    assert not thread.archived
    await world.discord.wait_for(lambda: second.deleted)


async def test_leaving_a_thread_archived_while_it_plays_says_why_then_deletes_the_card(
    world: World,
) -> None:
    """The leave's note reopens the archived thread; only then can its card go."""
    bot = await world.start(music_alone_timeout=0.5)
    thread = world.guild.add_thread(world.guild.text, "tunes", world.member)
    played = await world.discord.invoke_slash(
        thread, world.member, "play", {"query": world.media.tone(440, 20, "ogg")}
    )
    await world.reply(played)
    card = await world.discord.wait_for_message(thread, predicate=lambda m: bool(m.components))
    thread.archived = True
    world.guild.channel_updated(thread)
    await world.discord.wait_for(lambda: bot.get_channel(thread.id) is None)
    await world.discord.leave_voice(world.member, world.guild)
    await world.discord.wait_for_message(
        thread, predicate=lambda m: "Nobody is listening any more" in m.content
    )
    await world.discord.wait_for(lambda: card.deleted)


async def test_a_restart_after_its_voice_channel_was_deleted_says_the_queue_is_dropped(
    world: World,
) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await play_a_while(world)
    await bot.close()
    await world.discord.leave_voice(world.member, world.guild)
    world.guild.delete_channel(world.guild.voice)

    bot = await world.start_bot(settings)
    note = await world.wait_message("is gone")
    assert note.content == (
        "⚠️ The voice channel I was playing in is gone, so the queue from before my restart "
        "is dropped."
    )
    assert await saved_queue(bot) is None


async def test_a_moderator_disconnect_is_not_undone(
    world: World, discord_fake: FakeDiscord
) -> None:
    await world.start()
    identifies = await play_a_while(world)
    await discord_fake.disconnect_voice(discord_fake.bot_user, world.guild)
    await world.wait_message("I was disconnected from the voice channel")
    await world.slash("queue")  # a later reply: any rejoin would have been asked for by now
    assert world.voice.identifies == identifies
    assert discord_fake.voice_channel_of(discord_fake.bot_user, world.guild) is None


async def test_without_the_voice_libraries_music_loads_and_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cogs.music")
    monkeypatch.setitem(sys.modules, "davey", None)  # importing it fails
    monkeypatch.setattr(discord.voice_client, "has_dave", False)
    bot = await world.start()
    assert bot.get_cog("Music") is not None
    assert "voice does not work here: davey cannot be imported" in caplog.text
    reply = await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    assert reply == "Voice is unavailable on this bot right now; tell its owner."


async def test_a_play_while_the_saved_queue_resumes_is_not_called_a_failed_rejoin(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone plays a track just as the bot, after a restart, is about to rejoin for the
    saved queue: their track plays, and nobody is told that a rejoin failed and the
    queue was kept (it was not: their session replaced it, as when they play first)."""
    settings = world.settings()
    bot = await world.start(settings)
    await play_a_while(world)
    await bot.close()

    resuming, go_on = asyncio.Event(), asyncio.Event()
    fetchone = Reads.fetchone

    async def held(self: Reads, sql: str, params: Params = ()) -> Row | None:
        if "FROM music_settings WHERE guild_id" in sql and not resuming.is_set():
            resuming.set()  # the restore's read, just before it rejoins
            await go_on.wait()
        return await fetchone(self, sql, params)

    monkeypatch.setattr(Reads, "fetchone", held)
    bot = await world.start(settings)
    await asyncio.wait_for(resuming.wait(), 10)
    assert await world.slash("play", query=world.media.tone(550, 2, "ogg")) == (
        "▶️ Playing tone-550hz-2s."
    )
    go_on.set()
    await world.wait_message("The queue is finished", within=15)
    said = [m.content for m in world.discord.messages_in(world.guild.text)]
    assert not [line for line in said if "couldn't rejoin" in line or "Back after" in line]


async def test_a_saved_track_gone_after_a_restart_is_skipped_after_the_resume_note(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note that the queue is back comes first, then that its track is gone (here a
    note sent once the player runs waits for the failure: the order a slow send gives)."""
    settings = world.settings()
    bot = await world.start(settings)
    await play_a_while(world)
    await bot.close()

    send = discord.abc.Messageable.send

    async def slow_send(self: discord.abc.Messageable, content: Any = None, **kwargs: Any) -> Any:
        if isinstance(self, discord.TextChannel) and "Back after a restart" in str(content):
            client = cast(commands.Bot, self._state._get_client())
            music = cast(Music, client.get_cog("Music"))
            player = music.sessions.players.get(self.guild.id)
            if player is not None and player.running:  # its track is under way already
                await world.wait_message("Skipped")
        return await send(self, content, **kwargs)

    monkeypatch.setattr(discord.abc.Messageable, "send", slow_send)
    world.media.break_file(f"tone-440hz-{SECONDS}s.ogg")
    await world.start(settings)
    skipped = await world.wait_message(f"Skipped tone-440hz-{SECONDS}s")
    back = await world.wait_message(f"Back after a restart: resuming tone-440hz-{SECONDS}s")
    assert back.id < skipped.id
