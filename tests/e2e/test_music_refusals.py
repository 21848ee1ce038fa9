"""Music end to end: queries refused without a lookup, and messages that show the player as
it is (after a restart, after a queue edit, after a press on a /nowplaying copy)."""

from __future__ import annotations

import re

import discord
import pytest

from tests.e2e.music_world import World
from tests.fakes.discord_server import DEFAULT_PERMS, FakeUser

pytestmark = pytest.mark.backends("sqlite")


async def test_a_play_refused_without_a_lookup_never_joins_voice(world: World) -> None:
    """Spotify links on a bot without Spotify keys, queries too long, links that are no
    valid URL or carry a password are refused before the bot joins: it does not hop in
    and out of the channel."""
    await world.start()
    spotify = await world.slash("play", query="https://open.spotify.com/track/abc123")
    assert "SPOTIPY_CLIENT_ID" in spotify
    capitals = await world.slash("play", query="HTTPS://OPEN.SPOTIFY.COM/track/abc123")
    assert "SPOTIPY_CLIENT_ID" in capitals, "a link some phones write is Spotify's too"
    for bare in ("open.spotify.com/track/abc123", "<spotify.link/AbC12>"):  # typed, no https://
        assert "SPOTIPY_CLIENT_ID" in await world.slash("play", query=bare), bare
    assert await world.slash("play", query="x" * 501) == (
        "That's too long: keep it to 500 characters."
    )
    assert await world.slash("play", query="http://[::1") == "That link isn't a valid URL."
    assert (await world.slash("play", query="https://me:secret@example.com/a.ogg")).startswith(
        "That link holds a user name or password"
    )
    assert world.discord.voice_state_updates == [], "the bot never joined"


async def test_a_queue_paused_before_a_restart_says_it_is_paused_not_resuming(
    world: World,
) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("play", query=world.media.tone(440, 4, "ogg"))
    await world.wait_frames(60)
    assert (await world.slash("pause")).startswith("⏸️ Paused")
    await world.wait_paused()
    await bot.close()

    await world.start(settings)
    note = await world.wait_message("Back after a restart")
    assert re.fullmatch(
        r"🔄 Back after a restart: tone-440hz-4s is paused at 0:0\d; `/resume` plays it on\.",
        note.content,
    ), note.content
    assert (await world.now_playing()).embeds[0]["title"] == "Paused"


async def test_the_now_playing_message_counts_the_tracks_up_next_after_queue_edits(
    world: World,
) -> None:
    """While paused nothing moves the now-playing message: a queue edit updates it."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    await world.wait_frames(10)
    await world.slash("pause")
    message = await world.now_playing()

    def footer() -> str:
        return message.embeds[0]["footer"]["text"]

    assert footer() == "Nothing up next"
    await world.slash("play", query=world.media.tone(550, 1, "ogg"))
    await world.slash("play", query=world.media.tone(660, 1, "ogg"))
    await world.discord.wait_for(lambda: footer() == "2 up next", 5)
    assert (await world.slash("remove", position=1)).startswith("🗑️")
    await world.discord.wait_for(lambda: footer() == "1 up next", 5)
    assert (await world.slash("clear")).startswith("🧹")
    await world.discord.wait_for(lambda: footer() == "Nothing up next", 5)
    saved = await world.discord.invoke_slash(
        world.guild.text, world.member, "playlist", {"name": "Mine"}, subcommand=["save"]
    )
    assert (await world.reply(saved)).startswith("💾 Saved")
    loaded = await world.discord.invoke_slash(
        world.guild.text, world.member, "playlist", {"name": "Mine"}, subcommand=["load"]
    )
    assert (await world.reply(loaded)).startswith("➕ Queued")
    await world.discord.wait_for(lambda: footer() == "1 up next", 5)


async def test_a_playlist_load_that_cannot_happen_is_refused_to_the_asker_alone(
    world: World,
) -> None:
    """Like /play, /playlist load answers a refusal for the asker alone: it defers (which
    makes its answer public) only once its checks passed."""
    await world.start()

    async def load(name: str, user: FakeUser = world.member) -> tuple[str, bool]:
        interaction = await world.discord.invoke_slash(
            world.guild.text, user, "playlist", {"name": name}, subcommand=["load"]
        )
        return await world.reply(interaction), interaction.ephemeral

    assert await load("Nothing") == ("You have no playlist called **Nothing** here.", True)
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    listener = world.discord.add_user("dave")
    world.guild.add_member(listener)
    await world.discord.join_voice(listener, world.guild.add_voice_channel("Other"))
    assert await load("Nothing", listener) == (
        f"I'm playing in <#{world.guild.voice.id}>; join me there.",
        True,
    )
    await world.discord.leave_voice(listener, world.guild)
    assert await load("Nothing", listener) == (
        "Join a voice channel first, then ask me again.",
        True,
    )


async def test_a_press_on_a_nowplaying_copy_updates_the_track_s_own_message_too(
    world: World,
) -> None:
    """Pause from a /nowplaying message: the message posted when the track started shows
    it too (nothing else would move it while paused), so its next press resumes."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    posted = await world.now_playing()
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "nowplaying")
    await world.reply(interaction)
    copy = interaction.original
    assert copy is not None and copy is not posted

    pressed = await world.press(copy, "toggle")
    assert (await pressed.wait_response())["type"] == 7
    assert copy.embeds[0]["title"] == "Paused"
    await world.discord.wait_for(lambda: posted.embeds[0]["title"] == "Paused", 5)
    pressed = await world.press(posted, "toggle")
    assert (await pressed.wait_response())["type"] == 7, "it resumed, not 'already paused'"
    assert posted.embeds[0]["title"] == "Now playing"


async def test_a_full_voice_channel_is_refused_unless_the_bot_may_move_members(
    world: World,
) -> None:
    """Discord lets only those who may Move Members into a full channel: without that the
    bot says so, and does not try; with it, it joins."""
    world.guild.add_member(world.discord.bot_user, permissions=DEFAULT_PERMS)
    voice = world.guild.voice
    voice.user_limit = 1
    bot = await world.start()  # the member fills the channel
    tone = world.media.tone(440, 1, "ogg")
    assert await world.slash("play", query=tone) == (
        f"<#{voice.id}> is full; I'd need the Move Members permission to join it anyway."
    )
    assert world.discord.voice_state_updates == [], "the bot never tried to join"

    moves = DEFAULT_PERMS | discord.Permissions(move_members=True).value
    world.guild.add_member(world.discord.bot_user, permissions=moves)
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    await world.discord.wait_for(lambda: guild.me.guild_permissions.move_members)
    assert (await world.slash("play", query=tone)).startswith("▶️")
    await world.wait_frames(10)


async def test_the_bots_own_stale_voice_state_does_not_make_a_channel_look_full(
    world: World,
) -> None:
    """After a crash Discord may still list the bot in the channel it played in: that is
    no place taken, the bot is not in it (no voice connection), so the channel is not full."""
    world.guild.add_member(world.discord.bot_user, permissions=DEFAULT_PERMS)
    voice = world.guild.voice
    voice.user_limit = 2
    bot = await world.start()  # the member takes one place
    await world.discord.join_voice(world.discord.bot_user, voice)  # the stale state
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    await world.discord.wait_for(lambda: guild.me.voice is not None)

    assert (await world.slash("play", query=world.media.tone(440, 1, "ogg"))).startswith("▶️")


async def test_a_deleted_text_channel_is_looked_up_once_not_for_every_music_message(
    world: World,
) -> None:
    """The channel /play was used in is deleted: each new play's message would look it
    up at Discord again (a request each, all refused); it is gone for the session."""
    bot = await world.start()
    side = world.guild.add_text_channel("music")
    tone = world.media.tone(440, 20, "ogg")
    await world.reply(await world.discord.invoke_slash(side, world.member, "play", {"query": tone}))
    assert await world.slash("loop", mode="queue") == "🔁 Loop: **queue**."
    await world.wait_frames(5)
    world.guild.delete_channel(side)
    await world.discord.wait_for(lambda: bot.get_channel(side.id) is None)

    for runs in (2, 3, 4):  # the fourth play starts once the third one's message was tried
        await world.slash("skip")
        await world.discord.wait_for(lambda runs=runs: len(world.played()) >= runs)

    path = f"/channels/{side.id}"
    assert [r.method for r in world.discord.requests if r.path == path] == ["GET"]
