"""Music edge cases end to end: skip votes across tracks, and other corners of the player.

The same fakes as tests/e2e/test_music.py: the real client plays generated tones into
the fake voice server, driven through the fake Discord.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import discord
import pytest

from cogs.music.cog import Music
from tests.conftest import eventually
from tests.e2e.music_world import World, pitch
from tests.e2e.test_music_control import listener, set_dj
from tests.e2e.test_music_library import command
from tests.fakes.discord_server import FakeMessage

pytestmark = pytest.mark.backends("sqlite")


async def test_a_vote_to_skip_a_track_that_ended_does_not_count_against_the_next(
    world: World,
) -> None:
    """Bob voted against the first track, which then played to its end: while the second
    one loads, Carol's vote is the only one against it (1 of the 2 needed)."""
    dj = world.guild.add_role("DJ")
    tones = [(440, 4), (660, 1), (880, 1)]
    names = [world.media.tone(f, s, "ogg").rsplit("/", 1)[1] for f, s in tones]
    world.media.held.add(names[1])
    await world.start()
    await set_dj(world, dj)
    bob, carol = listener(world, "bob"), listener(world, "carol")
    for user in (bob, carol):
        await world.discord.join_voice(user, world.guild.voice)
    await world.slash("play", query=world.media.page_url(*names, title="Tones"))
    await world.wait_frames(5)
    assert (await world.slash("skip", bob)).startswith("🗳️ 1/2 votes to skip Tones \\(1\\)")
    await eventually(lambda: names[1] in world.media.requests)  # the first one ended

    assert (await world.slash("skip", carol)).startswith("🗳️ 1/2 votes to skip Tones \\(2\\)")
    world.media.release.set()
    await world.wait_message("The queue is finished")
    assert [round(pitch(run), -1) for run in world.played()] == [440, 660, 880]


async def test_votes_to_skip_a_looped_track_stand_when_it_starts_over(world: World) -> None:
    """A loop's repeat is the same play (one now-playing message): the votes against it
    stand, so listeners of a short looped clip can still outvote it."""
    dj = world.guild.add_role("DJ")
    await world.start()
    bob, carol = listener(world, "bob"), listener(world, "carol")
    for user in (bob, carol):
        await world.discord.join_voice(user, world.guild.voice)
    await world.slash("play", query=world.media.tone(440, 2, "ogg"))
    assert await world.slash("loop", mode="track") == "🔁 Loop: **track**."
    await set_dj(world, dj)
    await world.wait_frames(5)
    assert (await world.slash("skip", bob)).startswith("🗳️ 1/2 votes to skip tone-440hz-2s")
    runs = len(world.played())
    await world.discord.wait_for(lambda: len(world.played()) > runs)  # it started over

    assert await world.slash("skip", carol) == "⏭️ Skipped tone-440hz-2s (2/2 votes)."
    await world.wait_message("The queue is finished")


async def test_a_full_queue_saves_as_a_playlist_of_as_many_tracks_as_one_holds(
    world: World,
) -> None:
    """A queue at its bound (500 up next) and its current track are one more than a
    playlist holds: the first 500 are saved, and the reply says so."""
    await world.start(music_max_queued_per_member=0, music_playlist_limit=1000)
    await world.slash("play", query=world.media.tone(440, 30, "ogg"))
    tone = world.media.tone(550, 1, "ogg").rsplit("/", 1)[1]
    world.media.write("t.ogg", (world.media.directory / tone).read_bytes())  # short: 60 a page
    for count in [60] * 8 + [20]:
        page = world.media.page_url(*["t.ogg"] * count, title="Many")
        assert await world.slash("play", query=page) == f"➕ Queued {count} tracks from **Many**."
    assert (await world.slash("play", query=world.media.tone(660, 1, "ogg"))).startswith(
        "The queue is full"
    )

    saved = await command(world, "playlist save", name="Big")
    assert saved.content == (
        "💾 Saved **Big** (the first 500 tracks of the 501 queued: a playlist holds no more)."
    )


async def test_a_title_with_line_breaks_stays_on_its_one_line(
    world: World, local_search: dict[str, tuple[str, str]]
) -> None:
    """Titles are written by others (a page's og:title may hold `&#10;`): one with line
    breaks must neither break its link in the embeds nor add lines that pass for queue
    entries."""
    title = "Line one\n`2.` Line two\u2028end"
    local_search["broken"] = (title, world.media.tone(440, 20, "ogg"))
    await world.start()
    assert await world.slash("play", query="broken") == (
        "▶️ Playing Line one \\`2.\\` Line two end."
    )
    message = await world.now_playing()
    link = f"[Line one \\`2.\\` Line two end](<{world.media.tone(440, 20, 'ogg')}>)"
    assert message.embeds[0]["description"].startswith(f"{link} `0:20`\n\n")


async def test_a_play_that_gets_in_just_as_the_idle_timer_fires_plays_and_stays(
    world: World,
) -> None:
    """The idle timer fires while a /play waits for the guild's lock to queue its track:
    the track plays, and the leave asked for by the idle player does not end it."""
    bot = await world.start(music_idle_timeout=5.0)  # time enough to resolve first
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.wait_message("The queue is finished")
    sessions = cast(Music, bot.get_cog("Music")).sessions
    idle, lock = sessions.players[world.guild.id], sessions.lock(world.guild.id)
    url = world.media.tone(660, 1, "ogg")
    world.media.held.add(url.rsplit("/", 1)[1])
    playing = asyncio.create_task(world.slash("play", query=url))
    await eventually(lambda: url.rsplit("/", 1)[1] in world.media.requests)  # it resolves
    async with lock:
        world.media.release.set()
        await eventually(lambda: len(lock._waiters or ()) == 1)  # the /play, to queue its track
        await eventually(lambda: not idle.running, within=8)  # the leave waits behind it
    assert (await playing).startswith("▶️")

    def finished() -> int:
        return sum(
            "The queue is finished" in m.content
            for m in world.discord.messages_in(world.guild.text)
        )

    await eventually(finished, equals=2)
    assert [round(pitch(run), -1) for run in world.played()] == [440, 660]
    assert not [m for m in world.discord.messages_in(world.guild.text) if "I left" in m.content]


async def test_a_failed_play_that_got_in_just_as_the_idle_timer_fired_leaves(
    world: World,
) -> None:
    """As above, but the /play finds nothing: the player its join put in place of the
    idle one is left again, as a /play that joined for nothing is."""
    bot = await world.start(music_idle_timeout=3.0)
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.wait_message("The queue is finished")
    sessions = cast(Music, bot.get_cog("Music")).sessions
    idle, lock = sessions.players[world.guild.id], sessions.lock(world.guild.id)
    url = world.media.tone(660, 1, "ogg")
    world.media.held.add(url.rsplit("/", 1)[1])
    world.media.break_file(url)
    async with lock:
        asking = await world.discord.invoke_slash(
            world.guild.text, world.member, "play", {"query": url}
        )
        await eventually(lambda: url.rsplit("/", 1)[1] in world.media.requests)  # it resolves
        await eventually(lambda: len(lock._waiters or ()) == 1)  # its join waits
        await eventually(lambda: not idle.running, within=5)  # the leave waits behind it
        world.media.release.set()
    assert "Nothing is playing" not in await world.reply(asking)
    assert not world.voice.connected(world.guild.id), "it did not stay for nothing"


async def test_a_247_return_with_no_saved_queue_plays_at_the_default_volume(
    world: World,
) -> None:
    """After /stop in 24/7 mode nothing is saved; the next start brings the bot back to
    its channel at MUSIC_DEFAULT_VOLUME, as any new player, not at 100 %."""
    owner = world.discord.owner
    settings = world.settings(music_default_volume=40)
    bot = await world.start(settings)
    await world.discord.join_voice(owner, world.guild.voice)
    assert (await world.slash("247", owner, mode="on")).startswith("🕒 24/7 is on")
    assert await world.slash("stop", owner) == "⏹️ Stopped the music and cleared the queue."
    await bot.close()

    bot = await world.start_bot(settings)
    music = cast(Music, bot.get_cog("Music"))
    await eventually(lambda: world.guild.id in music.sessions.players)
    assert await world.slash("volume") == "🔊 Volume: 40 %."


async def test_music_messages_a_long_slowmode_holds_are_given_up_in_one_log_line_each(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord holding the bot's messages for 10 minutes (a slowmode, where the bot lacks
    Manage Messages) raises, not waits (`max_ratelimit_timeout`): the now-playing card
    and the skip notice are given up with a warning, and the queue plays on."""
    caplog.set_level(logging.WARNING, logger="cogs.music")
    await world.start()
    dead = world.media.url("no-such-file.ogg")
    await world.slash("play", query=world.media.tone(440, 1, "ogg"))
    await world.wait_frames(5)
    world.discord.rate_limited[("POST", f"/channels/{world.guild.text.id}/messages")] = 600
    await world.slash("play", query=dead)  # skipped when its turn comes: a notice
    await world.slash("play", query=world.media.tone(880, 1, "ogg"))

    def warned(text: str) -> bool:
        return any(r.levelno == logging.WARNING and text in r.getMessage() for r in caplog.records)

    await eventually(lambda: warned("could not send a music message"))  # the skip notice
    await eventually(lambda: warned("could not post the now-playing message"))  # 880 Hz
    assert "event handler failed" not in caplog.text


async def test_controls_while_the_card_waits_for_its_edit_queue_one_more_edit_not_one_each(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Controls used while the now-playing card's edit waits out the channel's rate limit
    (AI replies streaming there share it) do not line up an edit each, spending that
    limit for minutes: the edit under way, then one showing the player as it is then."""
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    message = await world.now_playing()
    edit, released = discord.Message.edit, asyncio.Event()

    async def held_edit(self: discord.Message, **changes: Any) -> discord.Message:
        await released.wait()
        return await edit(self, **changes)

    monkeypatch.setattr(discord.Message, "edit", held_edit)
    edits = len(message.edits)
    for mode in ("track", "queue", "off", "track", "queue"):
        assert await world.slash("loop") == f"🔁 Loop: **{mode}**."
    released.set()
    await world.discord.wait_for(lambda: "Loop: queue" in str(message.components))
    assert len(message.edits) - edits == 2
    await world.slash("stop")


async def test_skip_and_stop_go_on_though_discord_holds_the_cards_edits_and_deletes(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting or editing the now-playing card can raise discord.RateLimited (a wait past
    `max_ratelimit_timeout`): the next track's card is still posted, and /stop still
    leaves the voice channel, each with a log line instead of a failed handler."""
    caplog.set_level(logging.DEBUG, logger="cogs.music")
    await world.start()
    await world.slash("play", query=world.media.tone(440, 20, "ogg"))
    await world.slash("play", query=world.media.tone(880, 20, "ogg"))
    first = await world.now_playing()
    held = world.discord.rate_limited
    held[("DELETE", f"/channels/{world.guild.text.id}/messages/{first.id}")] = 600
    held[("PATCH", f"/channels/{world.guild.text.id}/messages/{first.id}")] = 600
    assert (await world.slash("skip")).startswith("⏭️ Skipped")

    def next_card() -> FakeMessage | None:
        last = world.discord.messages_in(world.guild.text)[-1]
        return last if last.embeds and last.id != first.id else None

    second = await world.discord.wait_for(next_card)
    assert second is not None
    held[("DELETE", f"/channels/{world.guild.text.id}/messages/{second.id}")] = 600
    held[("PATCH", f"/channels/{world.guild.text.id}/messages/{second.id}")] = 600
    assert await world.slash("stop") == "⏹️ Stopped the music and cleared the queue."
    assert world.discord.voice_channel_of(world.discord.bot_user, world.guild) is None
    assert "could not delete the now-playing message" in caplog.text
    assert "event handler failed" not in caplog.text
