"""Music end to end: the real client plays generated tones into the fake voice server.

Every test starts the bot the way ``python bot.py`` does, puts a member in a
voice channel, and drives the music commands through the fake Discord.  The
voice server decrypts what the bot sends, so the tests check real audio: how
many 20 ms frames arrived and, decoded, which tone they carry.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from cogs.music.cog import Music
from tests.conftest import BASIC, eventually
from tests.e2e.music_world import FRAMES_PER_SECOND, World, button, pitch, saved_queue
from tests.e2e.test_retention import maintenance, pending
from tests.fakes.discord_server import FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.media_server import FakeMediaServer, LocalSearchIE
from tests.fakes.spotify_server import FakeSpotify
from tests.fakes.voice_server import runs
from utils.pages import page_ids

# Playback and controls run on SQLite; what is kept across restarts (marked) on both.
pytestmark = pytest.mark.backends("sqlite")
both_backends = pytest.mark.backends("sqlite", "postgresql")

TEXT_ONLY = discord.Permissions(view_channel=True, send_messages=True, embed_links=True).value


@pytest.fixture
def ffmpeg_codecs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``-c:a`` of every FFmpeg the bot started for playback, in order."""
    codecs: list[str] = []
    original = subprocess.Popen

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            if isinstance(args, list) and args[-1:] == ["pipe:1"] and "-c:a" in args:
                codecs.append(args[args.index("-c:a") + 1])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return codecs


# Playback -------------------------------------------------------------------


async def test_play_reencodes_wav_and_delivers_the_frames(
    world: World, ffmpeg_codecs: list[str]
) -> None:
    url = world.media.tone(440, 3, "wav")
    await world.start()
    assert (await world.slash("play", query=url)).startswith("▶️ Playing tone-440hz-3s")
    now_playing = await world.now_playing()
    assert now_playing.embeds[0]["title"] == "Now playing"
    assert "0:03" in now_playing.embeds[0]["description"]
    await world.wait_frames(10)
    assert ffmpeg_codecs == ["libopus"], "WAV is re-encoded to Opus by FFmpeg"
    await world.wait_message("The queue is finished")
    frames = world.frames()
    assert len(frames) >= 0.9 * 3 * FRAMES_PER_SECOND
    assert world.voice.undecryptable == 0
    assert abs(pitch(frames) - 440) < 15
    await world.discord.wait_for(lambda: now_playing.deleted)  # the controls are removed


async def test_opus_source_is_passed_through(world: World, ffmpeg_codecs: list[str]) -> None:
    url = world.media.tone(660, 2, "ogg")
    await world.start()
    await world.slash("play", query=url)
    await world.wait_frames(10)
    assert ffmpeg_codecs == ["copy"], "Ogg/Opus is copied, not decoded and re-encoded"
    await world.wait_message("The queue is finished")
    assert len(world.frames()) >= 0.9 * 2 * FRAMES_PER_SECOND
    assert abs(pitch(world.frames()) - 660) < 15


async def test_two_tracks_play_in_order(world: World) -> None:
    first, second = world.media.tone(440, 1, "wav"), world.media.tone(880, 1, "webm")
    await world.start()
    await world.slash("play", query=first)
    assert (await world.slash("play", query=second)) == "➕ Queued tone-880hz-1s (#1)."
    await world.wait_message("The queue is finished")
    played = world.played()
    assert len(played) == 2
    assert [len(run) >= 45 for run in played] == [True, True]
    assert abs(pitch(played[0]) - 440) < 15
    assert abs(pitch(played[1]) - 880) < 20


async def test_search_words_play_the_first_result(
    world: World, local_search: dict[str, tuple[str, str]]
) -> None:
    local_search["calm tone"] = ("A calm tone", world.media.tone(440, 1, "ogg"))
    await world.start()
    assert await world.slash("play", query="some calm tone please") == "▶️ Playing A calm tone."
    await world.wait_frames(40)


async def test_a_title_that_is_a_link_is_shown_without_a_preview_of_its_page(
    world: World, local_search: dict[str, tuple[str, str]]
) -> None:
    """Titles are written by others: a web address in one is put in <...>, so the bot's
    messages about the track carry no embed of that page; its pings stay escaped."""
    local_search["a link"] = ("https://example.com/x @here", world.media.tone(440, 20, "ogg"))
    await world.start()
    shown = "<https://example.com/x> @\u200bhere"
    assert await world.slash("play", query="a link") == f"▶️ Playing {shown}."
    await world.now_playing()
    assert await world.slash("pause") == f"⏸️ Paused {shown}."


async def test_a_link_wrapped_in_angle_brackets_plays_that_link(
    world: World, spotify_fake: FakeSpotify, local_search: dict[str, tuple[str, str]]
) -> None:
    """Discord users wrap a link in <...> so that it shows no preview: it is still a link,
    not words to search for."""
    spotify_fake.add_track("t1", "Band", "Song")
    local_search["band - song"] = ("Band - Song", world.media.tone(660, 1, "ogg"))
    await world.start(
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    reply = await world.slash("play", query=f"<{world.media.tone(440, 1, 'ogg')}>")
    assert reply == "▶️ Playing tone-440hz-1s."
    reply = await world.slash("play", query=" <https://open.spotify.com/track/t1> ")
    assert reply == "➕ Queued Band - Song (#1)."
    await world.wait_message("The queue is finished")
    assert [round(pitch(run), -1) for run in world.played()] == [440, 660]


async def test_playlist_page_queues_every_entry(world: World) -> None:
    names = [world.media.tone(440, 1, "wav"), world.media.tone(880, 1, "ogg")]
    page = world.media.page_url(*(url.rsplit("/", 1)[1] for url in names), title="Two tones")
    await world.start()
    assert await world.slash("play", query=page) == "➕ Queued 2 tracks from **Two tones**."
    await world.wait_message("The queue is finished")
    assert len(world.played()) == 2


async def test_a_playlist_longer_than_the_queue_takes_says_tracks_were_left_out(
    world: World, spotify_fake: FakeSpotify
) -> None:
    names = [world.media.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660, 880)]
    page = world.media.page_url(*names, title="Three tones")
    songs = [spotify_fake.add_track(f"t{i}", "The Tones", f"Song {i}") for i in range(1, 4)]
    spotify_fake.add_playlist("list1", "My Mix", songs)
    spotify_fake.add_album("album1", "Tone Album", songs)
    await world.start(
        music_playlist_limit=2,
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    left_out = ": that's the most one playlist adds at a time."
    assert await world.slash("play", query=page) == (
        f"➕ Queued 2 of 3 tracks from **Three tones**{left_out}"
    )
    assert await world.slash("play", query="spotify:playlist:list1") == (
        f"➕ Queued 2 of 3 tracks from **My Mix**{left_out}"
    )
    assert await world.slash("play", query="https://open.spotify.com/album/album1") == (
        f"➕ Queued 2 of 3 tracks from **Tone Album**{left_out}"
    )


async def test_one_member_queues_only_their_share_and_playlists_are_cut_to_it(
    world: World, spotify_fake: FakeSpotify
) -> None:
    """MUSIC_MAX_QUEUED_PER_MEMBER: one member cannot fill the queue for everyone, by
    /play or !play, with a link or a playlist; others still add theirs, and people with
    Manage Channels in the voice channel are not held to it."""
    names = [world.media.tone(f, 1, "ogg").rsplit("/", 1)[1] for f in (440, 660, 880)]
    page = world.media.page_url(*names, title="Three tones")
    songs = [spotify_fake.add_track(f"t{i}", "The Tones", f"Song {i}") for i in range(1, 4)]
    spotify_fake.add_playlist("list1", "My Mix", songs)
    bob, mod = world.discord.add_user("bob"), world.discord.add_user("mod")
    world.guild.add_member(bob, permissions=BASIC)
    world.guild.add_member(mod, permissions=BASIC | discord.Permissions(manage_channels=True).value)
    await world.start(
        music_max_queued_per_member=2,
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    for user in (bob, mod):
        await world.discord.join_voice(user, world.guild.voice)
    left_out = ": that's as many as one person may have waiting in the queue here."
    playing = await world.slash("play", query=world.media.tone(440, 30, "ogg"))
    assert playing.startswith("▶️"), "the playing track is not waiting in the queue"
    assert await world.slash("play", query="spotify:playlist:list1") == (
        f"➕ Queued 2 of 3 tracks from **My Mix**{left_out}"
    )
    full = "You have 2 tracks waiting in the queue, as many as one person may add here; "
    assert (await world.slash("play", query=page)).startswith(full)
    await world.discord.send_message(
        world.guild.text, world.member, f"!play {world.media.tone(550, 1, 'ogg')}"
    )
    await world.wait_message(full)

    assert await world.slash("play", bob, query=page) == (
        f"➕ Queued 2 of 3 tracks from **Three tones**{left_out}"
    )
    assert await world.slash("play", mod, query=page) == "➕ Queued 3 tracks from **Three tones**."


# Controls -------------------------------------------------------------------


async def test_pause_answers_while_the_now_playing_message_waits_for_its_edit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing the now-playing message may wait out the channel's rate limit (AI replies
    streaming there share it): /pause answers all the same (an interaction has 3 s), and
    the message shows the pause once its edit goes through."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    message = await world.now_playing()
    edit, released = discord.Message.edit, asyncio.Event()

    async def held_edit(self: discord.Message, **changes: Any) -> discord.Message:
        await released.wait()
        return await edit(self, **changes)

    monkeypatch.setattr(discord.Message, "edit", held_edit)
    assert await world.slash("pause") == "⏸️ Paused tone-440hz-20s."
    assert message.embeds[0]["title"] == "Now playing"
    released.set()
    await world.discord.wait_for(lambda: message.embeds[0]["title"] == "Paused")


async def test_skip_moves_to_the_next_track(world: World) -> None:
    await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))
    await world.wait_frames(20)
    assert (await world.slash("skip")).startswith("⏭️ Skipped tone-440hz-3s")
    await world.wait_message("The queue is finished")
    first, second = world.played()
    assert len(first) < 2 * FRAMES_PER_SECOND, "the skipped track stopped early"
    assert abs(pitch(second) - 880) < 20


async def test_loop_track_repeats_it(world: World) -> None:
    await world.start()
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    assert await world.slash("loop", mode="track") == "🔁 Loop: **track**."
    await world.discord.wait_for(lambda: len(world.played()) >= 3, timeout=10)
    await world.slash("stop")
    assert all(len(run) >= 45 for run in world.played()[:2])


async def test_a_looped_track_keeps_its_now_playing_message_and_buttons(world: World) -> None:
    """Each repeat of a looped track is not announced again: a short clip on loop would
    post (and delete) a message every second; the one message goes on, buttons working."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    message = await world.now_playing()
    assert await world.slash("loop", mode="track") == "🔁 Loop: **track**."
    await world.discord.wait_for(lambda: len(world.played()) >= 3, timeout=10)
    posted = [m for m in world.discord.messages_in(world.guild.text) if m.embeds]
    assert posted == [message] and not message.deleted
    pressed = await world.press(message, "toggle")
    assert (await pressed.wait_response())["type"] == 7, "its buttons still act"
    assert message.embeds[0]["title"] == "Paused"
    await world.slash("stop")


async def test_pause_stops_packets_and_resume_restarts_them(world: World) -> None:
    await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(25)
    assert (await world.slash("pause")).startswith("⏸️ Paused")
    paused_at = await world.wait_paused()

    async def shows_paused() -> bool:  # the card is edited in the background
        return (await world.now_playing()).embeds[0]["title"] == "Paused"

    await eventually(shows_paused)
    resumed = time.monotonic()
    assert (await world.slash("resume")).startswith("▶️ Resumed")
    await world.wait_frames(paused_at + 25, within=5)
    assert all(f.time > resumed for f in world.frames()[paused_at:]), "no audio while paused"
    await world.wait_message("The queue is finished")
    assert len(world.frames()) >= 0.9 * 3 * FRAMES_PER_SECOND


async def test_stop_and_leave_disconnect(world: World) -> None:
    bot = await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(10)
    assert await world.slash("stop") == "⏹️ Stopped the music and cleared the queue."
    assert world.discord.voice_state_updates[-1]["channel_id"] is None
    assert bot.get_guild(world.guild.id).voice_client is None
    await world.discord.wait_for(lambda: not world.voice.connected(world.guild.id))
    stopped_at = len(world.frames())

    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(stopped_at + 10)
    assert await world.slash("leave") == "👋 Left the voice channel."
    await world.discord.wait_for(lambda: not world.voice.connected(world.guild.id))
    assert world.discord.voice_channel_of(world.discord.bot_user, world.guild) is None
    assert await world.slash("queue") == "The queue is empty."


async def test_stop_leave_and_the_stop_button_answer_before_a_slow_disconnect(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving waits for the voice connection to close (up to 5 s): Discord wants an
    answer within 3 s, so the deferral comes first."""
    closing = asyncio.Event()
    disconnect = discord.VoiceClient.disconnect

    async def slow_disconnect(self: discord.VoiceClient, *, force: bool = False) -> None:
        await closing.wait()
        await disconnect(self, force=force)

    monkeypatch.setattr(discord.VoiceClient, "disconnect", slow_disconnect)
    await world.start()

    async def leave(start: Callable[[], Awaitable[FakeInteraction]], deferral: int) -> str:
        await world.slash("play", query=world.media.tone(440, 30, "ogg"))
        await world.wait_frames(len(world.frames()) + 10)
        closing.clear()
        interaction = await start()
        assert (await interaction.wait_response(3))["type"] == deferral
        closing.set()
        if deferral == 5:
            return await world.reply(interaction)
        (followup,) = await world.discord.wait_for(lambda: interaction.followups)
        return followup.content

    async def press_stop() -> FakeInteraction:
        return await world.press(await world.now_playing(), "stop")

    def slash(name: str) -> Callable[[], Awaitable[FakeInteraction]]:
        return lambda: world.discord.invoke_slash(world.guild.text, world.member, name, {})

    assert await leave(slash("stop"), 5) == "⏹️ Stopped the music and cleared the queue."
    assert await leave(slash("leave"), 5) == "👋 Left the voice channel."
    assert await leave(press_stop, 6) == "⏹️ Stopped the music and cleared the queue."
    await world.discord.wait_for(lambda: not world.voice.connected(world.guild.id))


async def test_volume_reopens_ffmpeg_with_a_filter(world: World, ffmpeg_codecs: list[str]) -> None:
    await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(10)
    assert ffmpeg_codecs == ["copy"]
    assert await world.slash("volume", percent=50) == "🔊 Volume set to 50 %."
    assert ffmpeg_codecs == ["copy", "libopus"], "re-opened with a volume filter"
    assert await world.slash("volume") == "🔊 Volume: 50 %."
    await world.wait_message("The queue is finished")
    assert len(world.frames()) >= 0.85 * 3 * FRAMES_PER_SECOND, "playback continued"


async def test_bad_arguments_get_a_usage_error(world: World) -> None:
    """An optional argument that doesn't convert is an error, not a missing argument."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))

    async def prefix(text: str) -> str:
        sent = await world.discord.send_message(world.guild.text, world.member, text)
        answer = await world.discord.wait_for_message(
            world.guild.text, predicate=lambda m: m.id > sent.id and bool(m.content)
        )
        return answer.content

    assert await prefix("!volume abc") == (
        "`percent` must be a whole number. Usage: `!volume [percent]`"
    )
    assert await prefix("!loop sometimes") == (
        '`mode` must be one of: off, track, queue. Usage: `!loop ["off"|"track"|"queue"]`'
    )
    assert await prefix("!volume") == "🔊 Volume: 100 %.", "nothing was changed"
    assert await prefix("!loop") == "🔁 Loop: **track**.", "the mode was still off"


async def test_queue_edits_and_pages(world: World, discord_fake: FakeDiscord) -> None:
    urls = [world.media.tone(500, seconds, "ogg") for seconds in range(1, 13)]
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    for url in urls:
        await world.slash("play", query=url)
    assert await world.slash("move", source=12, destination=1) == (
        "↕️ Moved tone-500hz-12s to position 1."
    )
    assert await world.slash("remove", position=2) == "🗑️ Removed tone-500hz-1s."
    assert (await world.slash("remove", position=99)) == "Pick a position from 1 to 11."
    assert await world.slash("move", source=1, destination=999) == "Pick a position from 1 to 11."
    interaction = await discord_fake.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None
    now_playing, up_next = message.embeds[0]["description"].split("\n\n")
    assert now_playing.startswith("**Now playing**\n[tone-440hz-20s]")
    assert up_next.startswith("**Up next (11)**\n`1.` [tone-500hz-12s]")
    assert message.embeds[0]["footer"]["text"] == "Page 1/2 · loop: off"

    next_button = message.components[0]["components"][1]["custom_id"]
    stranger = discord_fake.add_user("bob")
    world.guild.add_member(stranger)
    refused = await discord_fake.click_button(message, next_button, stranger)
    assert "belong to whoever asked" in (await refused.wait_response())["data"]["content"]
    click = await discord_fake.click_button(message, next_button, world.member)
    await click.wait_response()
    await discord_fake.wait_for(lambda: message.embeds[0]["footer"]["text"].startswith("Page 2/2"))
    assert "**Up next (11)**\n`11.` [tone-500hz-11s]" in message.embeds[0]["description"]
    assert await world.slash("clear") == "🧹 Cleared 11 tracks from the queue."
    assert await world.slash("clear") == "There is nothing to clear."
    assert (await world.slash("shuffle")) == "There is nothing to shuffle."


async def queue_pages(world: World) -> list[list[str]]:
    """/queue, then Next up to the last page: the numbered lines of each page."""
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None
    pages: list[list[str]] = []
    while True:
        embed = message.embeds[0]
        pages.append([line for line in embed["description"].splitlines() if line[:1] == "`"])
        shown, count = embed["footer"]["text"].split()[1].split("/")  # "Page 1/2 · loop: off"
        assert int(shown) == len(pages)
        if shown == count:
            return pages
        next_button = message.components[0]["components"][1]["custom_id"]
        pressed = await world.discord.click_button(message, next_button, world.member)
        assert (await pressed.wait_response())["type"] == 7, "the message shows the next page"


async def test_queue_buttons_come_off_after_paging_longer_than_a_token_lives(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    tones = [world.media.tone(440 + n, 20, "ogg").rsplit("/", 1)[1] for n in range(12)]
    await world.start()
    # The module the bot loaded (each start imports the cog's modules afresh).
    monkeypatch.setattr(sys.modules["cogs.music.views"], "QUEUE_VIEW_TIMEOUT", 2.0)
    await world.slash("play", query=world.media.page_url(*tones, title="Twelve"))
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None
    next_button = message.components[0]["components"][1]["custom_id"]
    pressed = await world.discord.click_button(message, next_button, world.member)
    await pressed.wait_response()
    interaction.expired = True  # paged for over 15 minutes: /queue's token no longer works

    await world.discord.wait_for(lambda: not message.components, 5)


async def test_queue_buttons_left_on_by_an_outage_answer_that_they_expired(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord unreachable when the view timed out: its buttons stayed on the message, and
    a later press is answered (not "This interaction failed")."""
    tones = [world.media.tone(440 + n, 20, "ogg").rsplit("/", 1)[1] for n in range(12)]
    await world.start()
    monkeypatch.setattr(sys.modules["cogs.music.views"], "QUEUE_VIEW_TIMEOUT", 1.0)
    await world.slash("play", query=world.media.page_url(*tones, title="Twelve"))
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None
    next_button = message.components[0]["components"][1]["custom_id"]
    await (await world.discord.click_button(message, next_button, world.member)).wait_response()
    failed: list[object] = []

    async def unreachable(self: discord.Message, **changes: Any) -> discord.Message:
        failed.append(changes)
        response = cast(Any, SimpleNamespace(status=503, reason="unreachable"))
        raise discord.HTTPException(response, "down")

    with monkeypatch.context() as outage:
        outage.setattr(discord.Message, "edit", unreachable)
        await eventually(lambda: failed)
    assert message.components, "the buttons stayed on"

    previous_button = message.components[0]["components"][0]["custom_id"]
    pressed = await world.discord.click_button(message, previous_button, world.member)
    answer = await pressed.wait_response()
    assert answer["data"]["content"] == "These buttons have expired; use `/queue` again."
    await world.discord.wait_for(lambda: not message.components, 5)


async def test_every_queued_track_shows_on_a_queue_page(
    world: World, local_search: dict[str, tuple[str, str]]
) -> None:
    """Ordinary titles of some 75 characters: all ten lines of a page fit on it."""
    title = "Some Artist - A Fairly Ordinary Song Title Number {:02} (Official Music Video)"
    for n in range(12):
        local_search[f"track {n:02}"] = (title.format(n), world.media.tone(440 + n, 30, "ogg"))
    await world.start()
    for n in range(12):
        await world.slash("play", query=f"track {n:02}")

    first, second = await queue_pages(world)
    shown = [line.split("` [", 1) for line in first + second]
    assert [number for number, _ in shown] == [f"`{n}." for n in range(1, 12)]
    escaped = title.replace("(", "\\(").replace(")", "\\)")
    assert [text.split("](<")[0] for _, text in shown] == [escaped.format(n) for n in range(1, 12)]


async def test_queue_buttons_show_the_queue_as_it_is_now(world: World) -> None:
    """A /queue message pages through the queue playing when a button is pressed: after
    /stop and a new /play, the new one; once the music stopped, none."""
    await world.start()
    for seconds in range(21, 34):
        await world.slash("play", query=world.media.tone(500, seconds, "ogg"))
    messages = []
    for _ in range(2):
        interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
        await world.reply(interaction)
        assert interaction.original is not None
        messages.append(interaction.original)
    assert messages[0].embeds[0]["footer"]["text"] == "Page 1/2 · loop: off"

    assert (await world.slash("stop")).startswith("⏹️ Stopped the music")
    assert (await world.slash("play", query=world.media.tone(880, 20, "ogg"))).startswith("▶️")
    replaced, emptied = messages
    next_button = replaced.components[0]["components"][1]["custom_id"]
    await (await world.discord.click_button(replaced, next_button, world.member)).wait_response()
    embed = replaced.embeds[0]
    assert embed["description"].startswith("**Now playing**\n[tone-880hz-20s]")
    assert "**Up next (0)**\nNothing." in embed["description"]
    assert embed["footer"]["text"] == "Page 1/1 · loop: off"

    assert (await world.slash("stop")).startswith("⏹️ Stopped the music")
    next_button = emptied.components[0]["components"][1]["custom_id"]
    await (await world.discord.click_button(emptied, next_button, world.member)).wait_response()
    assert emptied.embeds[0]["description"] == "The queue is empty."
    assert emptied.components == [], "nothing left to page through"


@pytest.mark.slow  # ~5 s: three plays, a stop and an idle leave
async def test_a_slow_resolve_blocks_neither_stop_nor_the_idle_leave(
    world: World,
    discord_fake: FakeDiscord,
    local_search: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search held in yt-dlp (a 30 s playlist, say) holds no lock: /stop and the idle
    leave answer while it is held; the /play goes on once it resolves, and a later /play
    still queues after it."""
    local_search["slow"] = ("slow song", world.media.tone(660, 1, "ogg"))
    local_search["quick"] = ("quick song", world.media.tone(880, 1, "ogg"))
    searching, release = threading.Event(), threading.Event()
    searched: list[str] = []
    search = LocalSearchIE._search_results

    def held(self: LocalSearchIE, query: str) -> Any:
        searched.append(query)
        if "slow" in query:
            searching.set()
            release.wait(20)
            searched.append("released")
        return search(self, query)

    monkeypatch.setattr(LocalSearchIE, "_search_results", held)
    text = world.guild.text

    async def play(query: str) -> FakeInteraction:
        return await discord_fake.invoke_slash(text, world.member, "play", {"query": query})

    async def play_held() -> tuple[FakeInteraction, int]:
        """Start `/play slow`; returns it and the message count once it is held."""
        searching.clear()
        release.clear()
        pending = await play("slow")
        await discord_fake.wait_for(searching.is_set)
        return pending, len(discord_fake.messages_in(text))

    await world.start(music_idle_timeout=1.0)
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    pending, _ = await play_held()
    later = await play("quick")
    assert await world.slash("stop") == "⏹️ Stopped the music and cleared the queue."
    release.set()
    assert await world.reply(pending) == "▶️ Playing slow song."
    assert await world.reply(later) == "➕ Queued quick song (#1)."
    assert searched == ["slow", "released", "quick"], "a later /play waits its turn"

    await world.wait_message("The queue is finished")
    pending, seen = await play_held()
    await discord_fake.wait_for_message(
        text, predicate=lambda m: "Nothing is playing, so I left" in m.content, after=seen
    )
    release.set()
    assert await world.reply(pending) == "▶️ Playing slow song.", "it joins again"


# Buttons --------------------------------------------------------------------


async def test_buttons_only_work_for_people_in_the_voice_channel(
    world: World, discord_fake: FakeDiscord
) -> None:
    outsider = discord_fake.add_user("carol")
    world.guild.add_member(outsider)
    await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    message = await world.now_playing()
    await world.wait_frames(10)

    refused = await world.press(message, "toggle", outsider)
    response = await refused.wait_response()
    assert response["data"]["content"] == f"Join <#{world.guild.voice.id}> to control the music."
    assert refused.ephemeral
    before = len(world.frames())
    await world.discord.wait_for(lambda: len(world.frames()) > before + 10, timeout=3)

    pressed = await world.press(message, "toggle")
    assert (await pressed.wait_response())["type"] == 7, "the message is updated in place"
    assert message.embeds[0]["title"] == "Paused"
    assert message.find_component(button(message, "toggle"))["label"] == "Resume"
    paused_at = await world.wait_paused()
    looped = await world.press(message, "loop")
    await looped.wait_response()
    assert len(world.frames()) == paused_at, "no audio while paused"
    assert message.find_component(button(message, "loop"))["label"] == "Loop: track"
    stopped = await world.press(message, "stop")
    assert (await stopped.wait_response())["type"] == 6, "deferred: leaving takes a while"
    (note,) = await discord_fake.wait_for(lambda: stopped.followups)
    assert "Stopped" in note.content and note.flags & 64, "only the presser sees it"
    await world.discord.wait_for(lambda: not world.voice.connected(world.guild.id))


async def test_the_stop_button_answers_when_the_database_fails(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A database error while stopping: the presser gets a short answer, not "This
    interaction failed", and the failure is logged once, without a traceback."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    message = await world.now_playing()

    async def broken(self: object, guild_id: int) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sys.modules["cogs.music.store"].SaveQueue, "forget", broken)
    stopped = await world.press(message, "stop")
    assert (await stopped.wait_response())["type"] == 6
    (note,) = await world.discord.wait_for(lambda: stopped.followups)
    assert note.content == "Something went wrong on my side; try again in a moment."
    assert note.flags & 64
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is None
    assert "disk I/O error" in failures[0].getMessage()
    await world.discord.wait_for(lambda: not world.voice.connected(world.guild.id))


async def test_buttons_of_an_earlier_track_do_nothing(world: World) -> None:
    """A /nowplaying message stays in the channel; once its track is over, its buttons
    say so instead of acting on whatever plays now."""
    await world.start()
    for hz in (440, 550):
        await world.slash("play", query=world.media.tone(hz, 20, "ogg"))
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "nowplaying")
    await world.reply(interaction)
    old = interaction.original
    assert old is not None and "[tone-440hz-20s]" in old.embeds[0]["description"]

    assert await world.slash("skip") == "⏭️ Skipped tone-440hz-20s."
    current = await world.discord.wait_for(
        lambda: next((m for m in world.discord.messages_in(world.guild.text) if playing(m)), None)
    )
    for action in ("skip", "toggle", "stop"):
        pressed = await world.press(old, action)
        response = await pressed.wait_response()
        assert response["data"]["content"] == (
            "That message is out of date: `/nowplaying` shows what plays now, with its buttons."
        )
        assert pressed.ephemeral
    assert "[tone-440hz-20s]" in old.embeds[0]["description"], "left as it was"
    assert playing(current), "tone-550hz-20s still plays"
    pressed = await world.press(current, "toggle")
    assert (await pressed.wait_response())["type"] == 7, "the current message's buttons work"
    assert current.embeds[0]["title"] == "Paused"


def playing(message: FakeMessage) -> bool:
    """A live now-playing message of tone-550hz-20s."""
    return bool(
        not message.deleted
        and message.components
        and message.embeds[0].get("title") == "Now playing"
        and "[tone-550hz-20s]" in message.embeds[0]["description"]
    )


async def test_controls_need_the_caller_in_the_voice_channel(
    world: World, discord_fake: FakeDiscord
) -> None:
    await world.start()
    elsewhere = world.guild.add_voice_channel("Other")
    listener = discord_fake.add_user("dave")
    world.guild.add_member(listener)
    await discord_fake.join_voice(listener, elsewhere)
    assert await world.slash("skip", listener) == "I'm not playing anything right now."
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    assert (
        await world.slash("skip", listener)
        == f"Join <#{world.guild.voice.id}> to control the music."
    )
    assert await world.slash("play", listener, query=world.media.tone(440, 1, "ogg")) == (
        f"I'm playing in <#{world.guild.voice.id}>; join me there."
    )
    nobody = discord_fake.add_user("erin")
    world.guild.add_member(nobody)
    assert await world.slash("play", nobody, query="anything") == (
        "Join a voice channel first, then ask me again."
    )


async def test_a_play_from_another_channel_is_refused_before_the_query_resolves(
    world: World,
    discord_fake: FakeDiscord,
    local_search: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the bot plays to people elsewhere, a /play from another channel gets its
    refusal at once: it does not wait for its query (a long playlist) to resolve first."""
    local_search["song"] = ("a song", world.media.tone(660, 1, "ogg"))
    searched: list[str] = []
    search = LocalSearchIE._search_results

    def recorded(self: LocalSearchIE, query: str) -> Any:
        searched.append(query)
        return search(self, query)

    monkeypatch.setattr(LocalSearchIE, "_search_results", recorded)
    await world.start()
    elsewhere = world.guild.add_voice_channel("Other")
    listener = discord_fake.add_user("dave")
    world.guild.add_member(listener)
    await discord_fake.join_voice(listener, elsewhere)
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    assert await world.slash("play", listener, query="song") == (
        f"I'm playing in <#{world.guild.voice.id}>; join me there."
    )
    assert searched == [], "nothing was resolved for a play that cannot happen"


async def test_play_needs_connect_and_speak_in_the_channel(
    world: World, discord_fake: FakeDiscord
) -> None:
    world.guild.everyone.permissions &= ~discord.Permissions(connect=True, speak=True).value
    world.guild.add_member(discord_fake.bot_user, permissions=TEXT_ONLY)
    await world.start()
    assert await world.slash("play", query="anything") == (
        f"I need the Connect and Speak permissions in <#{world.guild.voice.id}>."
    )
    assert world.discord.voice_state_updates == []


# Sources and safety ----------------------------------------------------------


async def test_broken_link_is_skipped_and_the_next_track_plays(world: World) -> None:
    await world.start()
    first = world.media.tone(440, 1, "ogg")
    broken = world.media.tone(550, 1, "ogg")
    last = world.media.tone(880, 1, "ogg")
    garbage = world.media.write("not-audio.ogg", b"this is not audio" * 100)
    await world.slash("play", query=first)
    await world.slash("play", query=broken)
    assert (await world.slash("play", query=garbage)).startswith("➕ Queued")
    await world.slash("play", query=last)
    world.media.break_file(broken)
    await world.wait_message("Skipped tone-550hz-1s")
    await world.wait_message("Skipped not-audio")
    await world.wait_message("The queue is finished")
    played = world.played()
    assert len(played) == 2
    assert abs(pitch(played[1]) - 880) < 20


async def test_a_playlist_of_dead_videos_gets_one_skip_notice_not_one_each(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures in a row share one notice, edited as they come; a track that plays ends
    the run.  The log keeps a line per failure."""
    dead = [f"gone-{n}.ogg" for n in range(1, 6)]
    good = world.media.tone(440, 1, "ogg").rsplit("/", 1)[1]
    page = world.media.page_url(*dead, good, "gone-6.ogg", title="Mostly gone")
    await world.start()
    caplog.set_level(logging.INFO, logger="cogs.music.sessions")
    assert await world.slash("play", query=page) == "➕ Queued 7 tracks from **Mostly gone**."
    await world.wait_message("The queue is finished", within=20)

    notices = [m for m in world.discord.messages_in(world.guild.text) if "Skipped" in m.content]
    assert len(notices) == 2
    first, second = (m.content for m in notices)
    assert first.startswith("⚠️ Skipped 5 tracks I couldn't play; the last was ")
    assert second.startswith("⚠️ Skipped ") and "tracks" not in second
    assert all(m.allowed_mentions == {"parse": []} for m in notices)
    assert len(world.played()) == 1
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 6


async def test_private_addresses_are_refused_unless_allowed(world: World) -> None:
    await world.start(music_allow_private_urls=False)
    url = world.media.tone(440, 1, "ogg")
    refusal = "That link points to a private or local network address; I won't open it."
    assert await world.slash("play", query=url) == refusal
    local_name = url.replace("127.0.0.1", "localhost")
    assert await world.slash("play", query=local_name) == refusal
    assert await world.slash("play", query="http://[::ffff:10.0.0.1]/a.mp3") == refusal
    assert await world.slash("play", query="file:///etc/passwd") == (
        "I can only play http:// and https:// links."
    )
    for malformed in (
        "http://[::1",
        "https://example.com:99999/a.mp3",
        "https://example.com:abc/a.mp3",
        "https://example.com:0/a.mp3",
    ):
        assert await world.slash("play", query=malformed) == "That link isn't a valid URL."
    assert world.frames() == []
    assert world.media.requests == [], "nothing was fetched"
    bot_user = world.discord.bot_user
    await world.discord.wait_for(
        lambda: world.discord.voice_channel_of(bot_user, world.guild) is None
    )


PUBLIC_NAME = "localhost"
"""Stands in for a public site: the tests allow it by name (``MUSIC_ALLOWED_HOSTS``), while
every private address reached any other way, 127.0.0.1 included, stays refused."""


async def test_redirects_into_the_private_network_are_refused_alike(
    world: World, media_dir: Path
) -> None:
    """A public link that redirects inside: no request gets there, no port can be told apart."""
    async with FakeMediaServer(media_dir) as internal:
        secret = internal.tone(440, 1, "ogg")
        await world.start(music_allow_private_urls=False, music_allowed_hosts=(PUBLIC_NAME,))
        to_open_port = await world.slash(
            "play", query=world.media.redirect_url(secret, host=PUBLIC_NAME)
        )
        to_closed_port = await world.slash(
            "play", query=world.media.redirect_url("http://127.0.0.1:1/a.ogg", host=PUBLIC_NAME)
        )
        assert (
            to_open_port
            == to_closed_port
            == ("That link points to a private or local network address; I won't open it.")
        )
        assert internal.requests == [], "the private target never received a request"

        # The same way out works for a public target, playback included.
        tone = world.media.tone(660, 1, "ogg").replace("127.0.0.1", PUBLIC_NAME)
        reply = await world.slash("play", query=world.media.redirect_url(tone, host=PUBLIC_NAME))
        assert reply.startswith("▶️ Playing")
        await world.wait_message("The queue is finished")
        assert abs(pitch(world.played()[0]) - 660) < 20
        assert internal.requests == []


async def test_ffprobe_and_ffmpeg_hops_are_checked_too(
    world: World, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link that yt-dlp sees as media but that sends FFmpeg elsewhere gets nowhere."""
    monkeypatch.setenv("no_proxy", "*")  # FFmpeg would connect directly without the egress
    async with FakeMediaServer(media_dir) as internal:
        secret = internal.tone(440, 1, "ogg")
        name = world.media.tone(550, 1, "wav").rsplit("/", 1)[1]
        cloaked = world.media.cloaked_url(name, secret, host=PUBLIC_NAME)
        good = world.media.tone(880, 1, "ogg").replace("127.0.0.1", PUBLIC_NAME)
        await world.start(music_allow_private_urls=False, music_allowed_hosts=(PUBLIC_NAME,))
        assert (await world.slash("play", query=good)).startswith("▶️ Playing")
        assert (await world.slash("play", query=cloaked)).startswith("➕ Queued")
        await world.wait_message("Skipped tone-550hz-1s: the stream couldn't be read.")
        await world.wait_message("The queue is finished")
        assert internal.requests == [], "neither ffprobe nor FFmpeg reached the private target"
        assert any(path.startswith("/cloak/") for path in world.media.requests), "were sent"
        played = world.played()
        assert len(played) == 1 and abs(pitch(played[0]) - 880) < 20


async def test_media_that_is_not_http_is_refused(world: World) -> None:
    """A page's ``tcp://`` or ``tls://`` media would take FFmpeg and ffprobe straight to an
    internal port (the egress only sees http): nothing connects there."""
    connections: list[object] = []

    async def internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    async with await asyncio.start_server(internal, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await world.start(music_allow_private_urls=False, music_allowed_hosts=(PUBLIC_NAME,))
        for scheme in ("tcp", "tls"):
            page = world.media.page_url(f"{scheme}://127.0.0.1:{port}/a.mp3", host=PUBLIC_NAME)
            assert await world.slash("play", query=page) == (
                "I couldn't find an audio stream I can play in that."
            )
    assert connections == [], "neither ffprobe nor FFmpeg reached the internal port"
    assert world.frames() == []


async def test_a_title_cannot_turn_into_a_link_of_its_own(
    world: World, local_search: dict[str, tuple[str, str]]
) -> None:
    """Whoever uploads a track picks its title; in the embeds it stays text inside the
    track's own link, never a masked link of its own."""
    url = world.media.tone(440, 20, "ogg")
    local_search["spoof"] = ("Official Video](https://evil.example/free-nitro) ", url)
    await world.start()
    await world.slash("play", query="spoof")
    line = f"[Official Video\\]\\(https://evil.example/free-nitro\\) ](<{url}>) `0:20`"
    message = await world.now_playing()
    assert message.embeds[0]["description"].startswith(f"{line}\n\n")
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    assert interaction.original is not None
    assert interaction.original.embeds[0]["description"].startswith(f"**Now playing**\n{line}\n")


# Spotify --------------------------------------------------------------------


async def test_spotify_album_and_playlist_links(
    world: World, spotify_fake: FakeSpotify, local_search: dict[str, tuple[str, str]]
) -> None:
    songs = [spotify_fake.add_track(f"t{i}", "The Tones", f"Song {i}") for i in range(1, 4)]
    spotify_fake.add_album("album1", "Tone Album", songs)
    spotify_fake.add_playlist("list1", "My Mix", [songs[2], songs[0]])
    spotify_fake.add_playlist("37i9dQZF1DXcBWIGoYBM5M", "Today's Top Hits", songs, by_spotify=True)
    for i, frequency in zip(range(1, 4), (440, 660, 880), strict=True):
        local_search[f"the tones - song {i}"] = (f"Song {i}", world.media.tone(frequency, 1, "ogg"))
    await world.start(
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    reply = await world.slash("play", query="https://open.spotify.com/album/album1?si=x")
    assert reply == "➕ Queued 3 tracks from **Tone Album**."
    reply = await world.slash("play", query="spotify:playlist:list1")
    assert reply == "➕ Queued 2 tracks from **My Mix**."
    reply = await world.slash(
        "play", query="https://open.spotify.com/intl-de/playlist/37i9dQZF1DXcBWIGoYBM5M"
    )
    assert "Spotify doesn't let apps read that playlist" in reply
    paged = [r for r in spotify_fake.requests if r.startswith("/v1/albums/album1/tracks")]
    assert paged, "the album's second page was fetched through its `next` link"
    await world.wait_message("The queue is finished", within=20)
    played = world.played()
    assert len(played) == 5
    assert [round(pitch(run), -1) for run in played] == [440, 660, 880, 880, 440]
    assert LocalSearchIE.searches[0] == "The Tones - Song 1", "searched when its turn came"


async def test_a_spotify_short_link_plays_the_song_it_leads_to(
    world: World,
    spotify_fake: FakeSpotify,
    local_search: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """spotify.link/… (from Spotify's share button) redirects to open.spotify.com: the
    redirect is read, not followed, through the egress (which looks the host up)."""
    loop = asyncio.get_running_loop()
    lookup = loop.getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        # The fake media server stands in for spotify.link: no lookup leaves the machine.
        return await lookup("127.0.0.1" if host == "spotify.link" else host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    spotify_fake.add_track("t1", "Band", "Song")
    local_search["band - song"] = ("Band - Song", world.media.tone(440, 1, "ogg"))
    await world.start(
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    short = world.media.redirect_url("https://open.spotify.com/track/t1?si=x", host="spotify.link")
    assert await world.slash("play", query=short) == "▶️ Playing Band - Song."
    elsewhere = world.media.redirect_url("https://example.com/", host="spotify.link")
    assert await world.slash("play", query=elsewhere) == (
        "That spotify.link doesn't lead to a Spotify track, album or playlist."
    )
    assert len([r for r in world.media.requests if r.startswith("/redirect")]) == 2
    await world.wait_frames(40)


async def test_a_spotify_song_not_found_is_skipped_without_a_ping(
    world: World, spotify_fake: FakeSpotify, local_search: dict[str, tuple[str, str]]
) -> None:
    """The notice repeats Spotify's title, which is anyone's to write: it pings nobody."""
    victim = world.discord.add_user("victim")
    world.guild.add_member(victim)
    spotify_fake.add_track("t1", "Band", f"hey <@{victim.id}> *now*")
    await world.start(
        spotipy_client_id=spotify_fake.client_id,
        spotipy_client_secret=spotify_fake.client_secret,
    )
    await world.slash("play", query="https://open.spotify.com/track/t1")
    notice = await world.wait_message("Skipped", within=20)
    cleaned = f"Band - hey <@\u200b{victim.id}> \\*now\\*"
    assert notice.content == f"⚠️ Skipped {cleaned}: No results for **{cleaned}**."
    assert notice.mentions == [] and notice.allowed_mentions == {"parse": []}


async def test_spotify_without_keys_explains_and_youtube_still_works(world: World) -> None:
    await world.start()
    reply = await world.slash("play", query="https://open.spotify.com/track/abc123")
    assert "SPOTIPY_CLIENT_ID" in reply and "still work" in reply
    assert (await world.slash("play", query=world.media.tone(440, 1, "ogg"))).startswith("▶️")


# Voice events ---------------------------------------------------------------


async def test_survives_moderator_move_and_disconnect(
    world: World, discord_fake: FakeDiscord
) -> None:
    bot = await world.start()
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(10)
    stage = world.guild.add_voice_channel("Stage")
    await discord_fake.move_member_voice(world.member, stage)
    await discord_fake.move_member_voice(discord_fake.bot_user, stage)
    before = len(world.frames())
    await world.wait_frames(before + 20, within=3)
    assert await world.slash("pause") == "⏸️ Paused tone-440hz-3s."
    await world.slash("resume")

    await discord_fake.disconnect_voice(discord_fake.bot_user, world.guild)
    await world.wait_message("I was disconnected from the voice channel")
    await discord_fake.wait_for(lambda: bot.get_guild(world.guild.id).voice_client is None)
    assert (await world.slash("play", query=world.media.tone(440, 1, "ogg"))).startswith("▶️")
    await world.wait_message("The queue is finished")


async def test_on_a_stage_it_becomes_a_speaker(world: World) -> None:
    """On a Stage everyone arrives in the audience, where nobody hears them: with Mute
    Members (an administrator has it) the bot makes itself a speaker, whether it joins
    a Stage or a moderator moves it onto one."""
    bot_user, guild = world.discord.bot_user, world.guild
    stage = guild.add_stage_channel("Stage")
    speaking = {"suppress": False, "request_to_speak_timestamp": None}
    await world.start()
    await world.discord.join_voice(world.member, stage)
    assert (await world.slash("play", query=world.media.tone(440, 3, "ogg"))).startswith("▶️")
    await world.discord.wait_for(lambda: world.discord.stage_state(bot_user, guild) == speaking)
    await world.wait_frames(10)
    assert (await world.slash("stop")).startswith("⏹️")

    await world.discord.join_voice(world.member, guild.voice)
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.discord.move_member_voice(world.member, stage)
    await world.discord.move_member_voice(bot_user, stage)
    assert world.discord.stage_state(bot_user, guild) == {**speaking, "suppress": True}
    await world.discord.wait_for(lambda: world.discord.stage_state(bot_user, guild) == speaking)


async def test_on_a_stage_without_mute_members_it_asks_to_speak_and_says_so(world: World) -> None:
    perms = discord.Permissions(connect=True, speak=True, request_to_speak=True).value
    world.guild.add_member(world.discord.bot_user, permissions=TEXT_ONLY | perms)
    stage = world.guild.add_stage_channel("Stage")
    await world.start()
    await world.discord.join_voice(world.member, stage)
    assert (await world.slash("play", query=world.media.tone(440, 3, "ogg"))).startswith("▶️")
    note = await world.wait_message("in the audience")
    assert note.content == (
        f"🎙️ I'm in the audience of <#{stage.id}>, where nobody hears me: invite me to speak, "
        "or give me the Mute Members permission there."
    )
    state = world.discord.stage_state(world.discord.bot_user, world.guild)
    assert state is not None and state["suppress"] and state["request_to_speak_timestamp"]


async def test_leaves_when_alone_or_idle(world: World, discord_fake: FakeDiscord) -> None:
    await world.start(music_alone_timeout=0.5, music_idle_timeout=1.0)
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(5)
    await discord_fake.leave_voice(world.member, world.guild)
    await world.wait_message("Nobody is listening any more")
    assert world.discord.voice_channel_of(discord_fake.bot_user, world.guild) is None

    await discord_fake.join_voice(world.member, world.guild.voice)
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.wait_message("The queue is finished")
    await world.wait_message("Nothing is playing, so I left")


# Restarts -------------------------------------------------------------------


@both_backends
async def test_restart_without_resume_forgets_the_session(world: World) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("play", query=world.media.tone(440, 3, "ogg"))
    await world.wait_frames(10)
    await bot.close()
    joins = len(world.discord.voice_state_updates)

    bot = await world.start(world.settings(music_resume_on_start=False))
    await eventually(lambda: bot.db.fetchval("SELECT COUNT(*) FROM music_sessions"), equals=0)
    await world.discord.send_message(world.guild.text, world.member, "!ping")  # a later reply
    await world.discord.wait_for_message(world.guild.text, predicate=lambda m: "Pong" in m.content)
    assert len(world.discord.voice_state_updates) == joins, "it did not rejoin"


@both_backends
async def test_restart_restores_the_queue_and_the_position(world: World) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("play", query=world.media.tone(440, 4, "ogg"))
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))
    await world.wait_frames(75)
    await bot.close()
    heard, mark = len(world.frames()), len(world.frames(audio_only=False))
    assert world.discord.voice_channel_of(world.discord.bot_user, world.guild) is None

    await world.start(settings)
    await world.wait_message("Back after a restart: resuming tone-440hz-4s at 0:01")
    await world.wait_message("The queue is finished", within=15)
    resumed, last = runs(world.frames(audio_only=False)[mark:])
    assert abs(heard + len(resumed) - 4 * FRAMES_PER_SECOND) < 20, "resumed where it stopped"
    assert abs(pitch(resumed) - 440) < 15 and abs(pitch(last) - 880) < 20


async def test_a_restart_takes_the_buttons_off_the_now_playing_message(world: World) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("play", query=world.media.tone(440, 6, "ogg"))
    before = await world.now_playing()
    await world.wait_frames(20)
    await bot.close()
    assert not before.deleted and before.components == [], "it stays, without its buttons"

    await world.start(settings)
    await world.wait_message("Back after a restart: resuming tone-440hz-6s")
    current = await world.now_playing()
    live = [m for m in world.discord.messages_in(world.guild.text) if m.components]
    assert live == [current] and current is not before


@both_backends
async def test_queue_pages_shown_before_a_restart_say_to_ask_again(world: World) -> None:
    tones = [world.media.tone(440 + n, 20, "ogg").rsplit("/", 1)[1] for n in range(12)]
    playlist = world.media.page_url(*tones, title="Twelve")
    bot = await world.start()
    await world.slash("play", query=playlist)
    interaction = await world.discord.invoke_slash(world.guild.text, world.member, "queue")
    await world.reply(interaction)
    message = interaction.original
    assert message is not None
    _, next_ = page_ids(bot.run_id, "queue")
    await bot.close()
    await world.start(music_resume_on_start=False)

    pressed = await world.discord.click_button(message, next_, world.member)
    assert (await pressed.wait_response())["data"]["content"] == (
        "These buttons stopped working when I restarted: use `/queue` again."
    )
    assert pressed.ephemeral


async def test_reloading_the_cog_resumes_playback(world: World, discord_fake: FakeDiscord) -> None:
    await world.start()
    await discord_fake.send_message(
        world.guild.text, world.member, f"!play {world.media.tone(440, 4, 'ogg')}"
    )
    await world.wait_message("▶️ Playing tone-440hz-4s")
    await world.wait_frames(50)
    await discord_fake.send_message(world.guild.text, discord_fake.owner, "!reload music")
    await world.wait_message("Reloaded `cogs.music`.")
    await world.wait_message("Back after a restart: resuming tone-440hz-4s")
    await world.wait_message("The queue is finished", within=10)
    assert len(world.frames()) >= 0.85 * 4 * FRAMES_PER_SECOND


# Retention ------------------------------------------------------------------


@pytest.mark.slow  # ~20 s: discord.py waits CONNECT_TIMEOUT for the voice state of a left guild
@both_backends
async def test_a_kick_keeps_the_saved_queue_until_the_grace_ends(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.music.restore")
    guild, fake = world.guild, world.discord
    bot = await world.start()
    later = world.settings(dev_guild_id=None)  # no slash sync into a guild it is not in
    await world.slash("play", query=world.media.tone(440, 4, "ogg"))
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))
    await world.wait_frames(25)
    queue = ["tone-440hz-4s", "tone-880hz-1s"]

    fake.remove_guild(guild)  # an accidental kick: the music stops, the queue stays
    music = cast(Music, bot.get_cog("Music"))
    await fake.wait_for(lambda: guild.id not in music.sessions.players)
    assert await saved_queue(bot) == queue

    await bot.close()  # a restart while still out: no voice join there, the queue stays
    joins = len(fake.voice_state_updates)
    bot = await world.start_bot(later)
    await fake.wait_for(lambda: f"not resuming music in guild {guild.id}" in caplog.text)
    assert len(fake.voice_state_updates) == joins
    assert await saved_queue(bot) == queue

    fake.rejoin_guild(guild)  # back within the grace; the next restart resumes the queue
    await fake.wait_for(lambda: bot.get_guild(guild.id))
    await bot.close()
    bot = await world.start_bot(later)
    await world.wait_message("Back after a restart: resuming tone-440hz-4s")

    fake.remove_guild(guild)  # for good this time
    await eventually(lambda: pending(bot), equals=[("guild", guild.id)])
    assert await saved_queue(bot) == queue
    assert await maintenance(bot, days_from_now=6).purge_due() == 0
    assert await saved_queue(bot) == queue
    assert await maintenance(bot, days_from_now=8).purge_due() == 1
    assert await saved_queue(bot) is None
    assert await bot.db.fetchval("SELECT count(*) FROM music_tracks") == 0
