"""/seek, /replay, /filter and the moving progress bar, end to end through the fakes.

The media here is a "clock": a tone whose pitch rises 50 Hz every second of the
track (200 Hz in its first second, 800 Hz in its 13th), so the decoded audio the
fake voice server receives tells where in the track the bot is playing.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from bot import Bot
from cogs.music.cog import Music
from cogs.music.player import Player
from cogs.music.store import MusicStore
from tests.conftest import eventually
from tests.e2e.music_world import World, button
from tests.fakes.media_server import FakeMediaServer
from tests.fakes.voice_server import tone_frequency

# Where audio lands in a track; storage is beside the point.
pytestmark = pytest.mark.backends("sqlite")

CLOCK_SECONDS = 20


def clock_url(media: FakeMediaServer) -> str:
    """Ogg/Opus, 200 Hz + 50 Hz per whole second into the track (made once; blocking)."""
    name = f"clock-{CLOCK_SECONDS}s.ogg"
    path: Path = media.directory / name
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                "-i", f"aevalsrc=sin(2*PI*(200+50*floor(t))*t):s=48000:d={CLOCK_SECONDS}",
                "-ac", "2", "-c:a", "libopus", "-b:a", "96k", str(path),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
    return media.url(name)


def heard_at(position: float) -> float:
    """The clock's pitch at ``position`` seconds."""
    return 200 + 50 * math.floor(position)


@pytest.fixture
def ffmpeg_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The arguments of every FFmpeg the bot started for playback, in order."""
    runs: list[list[str]] = []
    original = subprocess.Popen

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            if isinstance(args, list) and args[-1:] == ["pipe:1"]:
                runs.append([str(arg) for arg in args])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return runs


def player_of(bot: Bot, world: World) -> Player:
    return cast(Music, bot.get_cog("Music")).sessions.players[world.guild.id]


def codec(args: list[str]) -> str:
    return args[args.index("-c:a") + 1]


async def pitch_after(world: World, mark: int, count: int = 20) -> float:
    """The pitch of ``count`` audio frames after the first 5 that follow frame ``mark``
    (those may still come from before a seek)."""
    await world.wait_frames(mark + 5 + count)
    return tone_frequency(world.frames()[mark + 5 : mark + 5 + count])


async def test_seek_lands_at_the_position_in_the_decoded_audio(
    world: World, ffmpeg_runs: list[list[str]]
) -> None:
    bot = await world.start()
    await world.slash("play", query=clock_url(world.media))
    await world.wait_frames(25)
    assert abs(await pitch_after(world, 0) - heard_at(0)) < 25

    assert await world.slash("seek", position="0:12") == f"⏩ clock-{CLOCK_SECONDS}s at 0:12."
    assert abs(await pitch_after(world, len(world.frames())) - heard_at(12)) < 25
    args = ffmpeg_runs[-1]
    assert args[args.index("-i") - 2 : args.index("-i")] == ["-ss", "12.000"], "-ss before -i"
    assert codec(args) == "copy", "seeking keeps the Opus passthrough"

    await world.slash("pause")
    paused_at = await world.wait_paused()
    assert await world.slash("seek", position="5") == f"⏩ clock-{CLOCK_SECONDS}s at 0:05."
    assert await world.slash("seek", position="+4") == f"⏩ clock-{CLOCK_SECONDS}s at 0:09."
    assert player_of(bot, world).paused and player_of(bot, world).position == 9.0
    message = await world.now_playing()
    assert (
        message.embeds[0]["title"] == "Paused" and "0:09 / 0:20" in message.embeds[0]["description"]
    )
    assert len(world.frames()) == paused_at, "seeking while paused plays nothing"
    await world.slash("resume")
    assert abs(await pitch_after(world, paused_at) - heard_at(9)) < 25
    assert await world.slash("replay") == f"⏮️ Replaying clock-{CLOCK_SECONDS}s."
    assert abs(await pitch_after(world, len(world.frames())) - heard_at(0)) < 25
    await world.slash("stop")


async def test_seek_volume_and_filter_defer_before_ffmpeg_opens_the_track_again(
    world: World,
) -> None:
    """Opening the track again takes FFmpeg's start: the interaction is deferred first,
    and a refusal comes at once."""
    await world.start()
    await world.slash("play", query=clock_url(world.media))
    await world.wait_frames(10)
    for name, options, said in (
        ("seek", {"position": "0:05"}, f"⏩ clock-{CLOCK_SECONDS}s at 0:05."),
        ("volume", {"percent": 80}, "🔊 Volume set to 80 %."),
        ("filter", {"effect": "bassboost"}, "🎛️ Filter: **bassboost**."),
        (
            "seek",
            {"position": "0:21"},
            f"That's past the end: clock-{CLOCK_SECONDS}s is 0:20 long.",
        ),
        ("volume", {"percent": 300}, "Pick a volume from 0 to 200 %."),
    ):
        interaction = await world.discord.invoke_slash(
            world.guild.text, world.member, name, options
        )
        first = await interaction.wait_response()
        assert first["type"] == (4 if "past" in said or "Pick" in said else 5), name
        assert await world.reply(interaction) == said
    await world.slash("stop")


async def test_seek_refuses_bad_positions_and_live_streams(world: World) -> None:
    bot = await world.start()
    assert await world.slash("seek", position="1:00") == "I'm not playing anything right now."
    await world.slash("play", query=clock_url(world.media))
    await world.wait_frames(10)
    usage = "Give a position such as `1:23`, `1:02:03`, `83` (seconds), `+30` or `-10`."
    for bad in ("abc", "1:75", "1:2:3:4", "+"):
        assert await world.slash("seek", position=bad) == usage
    assert await world.slash("seek", position="0:21") == (
        f"That's past the end: clock-{CLOCK_SECONDS}s is 0:20 long."
    )
    current = player_of(bot, world).queue.current
    assert current is not None
    current.duration = None  # how a live stream's track looks
    assert await world.slash("seek", position="5") == (
        "This is a live stream (or its length is unknown): it can't seek."
    )
    await world.slash("stop")


async def test_a_playlist_entry_takes_its_length_when_it_plays(world: World) -> None:
    """A page's entries come without a length; their stream knows it, and seeking needs it."""
    bot = await world.start()
    names = [clock_url(world.media), world.media.tone(440, 1, "ogg")]
    page = world.media.page_url(*(url.rsplit("/", 1)[1] for url in names), title="Clocks")
    assert await world.slash("play", query=page) == "➕ Queued 2 tracks from **Clocks**."
    await world.wait_frames(10)
    # The title is escaped (no masked link of its own); Discord shows "Clocks (1)".
    assert await world.slash("seek", position="0:02") == "⏩ Clocks \\(1\\) at 0:02."
    assert abs(await pitch_after(world, len(world.frames())) - heard_at(2)) < 25
    assert "0:20" in (await world.now_playing()).embeds[0]["description"]

    async def saved_length() -> float | None:
        (session,) = await MusicStore(bot.db).load_all()
        return session.current.duration if session.current else None

    assert round(await eventually(saved_length)) == CLOCK_SECONDS, "saved with the queue"
    await world.slash("stop")


async def test_filters_reencode_from_the_position_and_off_passes_through_again(
    world: World, ffmpeg_runs: list[list[str]]
) -> None:
    bot = await world.start()
    await world.slash("play", query=clock_url(world.media))
    await world.wait_frames(10)
    assert codec(ffmpeg_runs[-1]) == "copy"
    await world.slash("pause")
    await world.slash("seek", position="6")
    assert await world.slash("filter", effect="bassboost") == "🎛️ Filter: **bassboost**."
    args = ffmpeg_runs[-1]
    assert codec(args) == "libopus", "a filter re-encodes"
    assert args[args.index("-af") + 1].startswith("bass=")
    assert args[args.index("-i") - 2 : args.index("-i")] == ["-ss", "6.000"], "from the position"
    mark = await world.wait_paused()
    await world.slash("resume")
    assert abs(await pitch_after(world, mark) - heard_at(6)) < 25, "bass doesn't move the clock"

    await world.slash("pause")
    await world.wait_paused()
    assert await world.slash("filter", effect="speed") == (
        "Give the speed too, e.g. `/filter speed 1.25`."
    )
    assert await world.slash("filter", effect="speed", speed=3.0) == "Pick a speed from 0.5 to 2."
    assert await world.slash("filter", effect="nightcore") == "🎛️ Filter: **nightcore**."
    player = player_of(bot, world)
    start, mark = player.position, len(world.frames())
    await world.slash("resume")
    await world.wait_frames(mark + 100)
    await world.slash("pause")
    paused_at = await world.wait_paused()
    played = (paused_at - mark) * 0.02
    assert abs(player.position - (start + 1.25 * played)) < 0.1, "nightcore plays 1.25 × faster"
    last = world.frames()[paused_at - 15 : paused_at - 3]
    assert abs(tone_frequency(last) - 1.25 * heard_at(player.position - 0.15)) < 40

    assert await world.slash("filter", effect="off") == "🎛️ Filter off."
    assert codec(ffmpeg_runs[-1]) == "copy", "back to passthrough"
    at = player.position
    await world.slash("resume")
    heard = await pitch_after(world, paused_at, count=10)
    assert min(abs(heard - heard_at(at + lag)) for lag in (0.1, 0.3)) < 25, "continues there"
    await world.slash("stop")


async def test_the_progress_bar_moves_while_someone_listens(world: World) -> None:
    await world.start(music_progress_interval=1.0)
    await world.slash("play", query=clock_url(world.media))
    message = await world.now_playing()

    def positions() -> list[str]:
        bars = [e["embeds"][0]["description"] for e in message.edits if e.get("embeds")]
        return [bar.rsplit(" ", 3)[-3] for bar in bars]

    await world.discord.wait_for(lambda: len(set(positions())) >= 3, timeout=10)
    assert "components" not in message.edits[-1], "only the embed is edited"

    await world.slash("pause")
    await world.discord.wait_for(lambda: message.embeds[0]["title"] == "Paused")
    edits = len(message.edits)
    await asyncio.sleep(2.5)  # two ticks: a moving bar would have been edited by now
    assert len(message.edits) == edits, "no edits while paused"

    await world.slash("resume")
    await world.discord.wait_for(lambda: len(message.edits) >= edits + 2, timeout=5)
    await world.discord.leave_voice(world.member, world.guild)
    await asyncio.sleep(1.5)  # an edit already in flight lands
    edits = len(message.edits)
    await asyncio.sleep(2.5)
    assert len(message.edits) == edits, "no edits while nobody listens"

    await world.discord.join_voice(world.member, world.guild.voice)
    await world.slash("stop")
    assert message.deleted
    edits = len(message.edits)
    await asyncio.sleep(2.5)
    assert len(message.edits) == edits, "none after stop"


async def test_a_filter_stays_on_after_a_restart(
    world: World, ffmpeg_runs: list[list[str]]
) -> None:
    settings = world.settings()
    bot = await world.start(settings)
    await world.slash("play", query=clock_url(world.media))
    await world.wait_frames(10)
    assert await world.slash("filter", effect="nightcore") == "🎛️ Filter: **nightcore**."
    chain = ffmpeg_runs[-1][ffmpeg_runs[-1].index("-af") + 1]
    await bot.close()
    ffmpeg_runs.clear()

    bot = await world.start(settings)
    await world.wait_message("Back after a restart: resuming clock-")
    await eventually(lambda: bool(ffmpeg_runs))
    args = ffmpeg_runs[-1]
    assert codec(args) == "libopus" and args[args.index("-af") + 1] == chain, "still nightcore"
    await world.slash("stop")


async def test_seek_and_nowplaying_while_the_track_loads_after_a_restart(world: World) -> None:
    """A restored track loads again after a restart: /seek moves where it will start, and
    /nowplaying shows it loading, with buttons of this play (not the one before the restart)."""
    settings = world.settings()
    bot = await world.start(settings)
    url = clock_url(world.media)
    await world.slash("play", query=url)
    await world.wait_frames(10)
    before = button(await world.now_playing(), "skip")
    await bot.close()
    name, mark = url.rsplit("/", 1)[1], len(world.frames())
    world.media.held.add(name)
    asked = world.media.requests.count(name)

    await world.start(settings)
    await eventually(lambda: world.media.requests.count(name) > asked)  # it loads
    assert await world.slash("seek", position="0:06") == f"⏩ clock-{CLOCK_SECONDS}s at 0:06."
    shown = await world.discord.invoke_slash(world.guild.text, world.member, "nowplaying", {})
    answer = (await shown.wait_response())["data"]
    assert answer["embeds"][0]["title"] == "Loading"
    skip = [c["custom_id"] for c in answer["components"][0]["components"]][1]
    assert skip.startswith("music:skip:") and skip != before
    assert "0:06 / 0:20" in answer["embeds"][0]["description"]
    world.media.release.set()
    assert abs(await pitch_after(world, mark) - heard_at(6)) < 25, "it starts where it was sought"
    await world.slash("stop")


async def test_a_repeat_whose_kept_stream_link_expired_plays_with_a_fresh_one(
    world: World,
) -> None:
    """A loop's repeat reuses the stream link resolved for the play before it (for up to
    STREAM_TTL); one that expired meanwhile plays nothing, so it is resolved afresh once
    and plays, instead of being reported as unreadable."""
    name = world.media.tone(660, 1, "ogg").rsplit("/", 1)[-1]
    await world.start()
    await world.slash("play", query=world.media.fresh_url(name))
    assert await world.slash("loop", mode="track") == "🔁 Loop: **track**."
    await world.wait_frames(5)
    world.media.expire_links()
    await world.discord.wait_for(lambda: len(runs := world.played()) >= 2 and len(runs[1]) > 10)
    assert world.media.tokens == 2, "resolved once more"
    assert abs(tone_frequency(world.played()[1][2:-2]) - 660) < 25
    assert not [m for m in world.discord.messages_in(world.guild.text) if "Skipped" in m.content]
    await world.slash("stop")


async def test_a_track_whose_stream_link_expired_goes_on_with_a_fresh_one(world: World) -> None:
    """The site's stream link expired while the track played (links of long videos do,
    and so do those of a track paused for hours): FFmpeg opening it again for a seek gets
    403.  The track goes on from there with a link resolved afresh; it does not end as if
    it had played through."""
    clock_url(world.media)
    await world.start()
    await world.slash("play", query=world.media.fresh_url(f"clock-{CLOCK_SECONDS}s.ogg"))
    await world.wait_frames(10)
    world.media.expire_links()

    assert await world.slash("seek", position="0:05") == f"⏩ clock-{CLOCK_SECONDS}s at 0:05."
    assert abs(await pitch_after(world, len(world.frames())) - heard_at(5)) < 25
    assert world.media.tokens == 2, "resolved once more"
    assert not [m for m in world.discord.messages_in(world.guild.text) if "finished" in m.content]
    await world.slash("stop")
