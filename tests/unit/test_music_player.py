"""The per-guild play loop with a fake voice client, audio and event handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from cogs.music import voice_watch
from cogs.music.errors import MusicError
from cogs.music.filters import PRESETS, Sound
from cogs.music.player import Player
from cogs.music.player_protocols import LeaveReason
from cogs.music.queue import TrackQueue
from cogs.music.tracks import LoopMode, Stream, Track
from tests.conftest import eventually


class FakeVoice:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.connected = True
        self.source: FakeAudio | None = None
        self._after: Callable[[Exception | None], Any] | None = None

    def play(self, source: FakeAudio, *, after: Callable[[Exception | None], Any]) -> None:
        self.calls.append(f"play {source.stream.url}")
        self.source, self._after = source, after

    def finish(self, error: Exception | None = None) -> None:
        """The audio thread reached the end of the source."""
        after, self._after = self._after, None
        assert after is not None, "nothing is playing"
        after(error)

    def stop(self) -> None:
        self.calls.append("stop")
        if self._after is not None:
            self.finish()

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def is_connected(self) -> bool:
        return self.connected


class FakeAudio:
    def __init__(self, stream: Stream, start: float, sound: Sound, frames: int) -> None:
        self.stream, self.start, self.sound, self.frames = stream, start, sound, frames
        self.restarts: list[tuple[float, Sound]] = []
        self.cleaned = False

    @property
    def position(self) -> float:
        return self.start + self.frames * 0.02

    def restart(self, start: float, sound: Sound) -> None:
        self.restarts.append((start, sound))
        self.start, self.sound, self.frames = start, sound, 0

    def cleanup(self) -> None:
        self.cleaned = True


class Streams:
    def __init__(self) -> None:
        self.broken: set[str] = set()

    async def stream(self, track: Track) -> Stream:
        if track.source in self.broken:
            raise MusicError("that link is gone.")
        return Stream(track.source)


class Events:
    def __init__(self, voice: FakeVoice) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.changes = 0
        self.voice = voice
        self.recoverable = True
        """Whether :meth:`recover` brings the voice connection back."""

    async def track_started(self, player: Player, track: Track) -> None:
        self.log.append(("started", track.title))

    async def track_failed(self, player: Player, track: Track, reason: str) -> None:
        self.log.append(("failed", track.title, reason))

    async def queue_finished(self, player: Player) -> None:
        self.log.append(("finished",))

    def request_leave(self, player: Player, reason: LeaveReason) -> None:
        self.log.append(("leave", reason))

    def changed(self, player: Player) -> None:
        self.changes += 1

    moved = changed  # the position alone, saved while a track plays

    async def recover(self, player: Player) -> bool:
        self.log.append(("recover", player.position))
        self.voice.connected = self.recoverable
        return self.recoverable


class Rig:
    def __init__(self, **options: Any) -> None:
        self.voice, self.streams = FakeVoice(), Streams()
        self.events = Events(self.voice)
        self.frames = 100
        self.opened: list[FakeAudio] = []
        self.player = Player(
            1,
            self.voice,
            TrackQueue(10),
            streams=self.streams,
            open_audio=self.open,
            events=self.events,
            **{"idle_timeout": 5.0, "alone_timeout": 5.0, **options},
        )

    def open(self, stream: Stream, start: float, sound: Sound) -> FakeAudio:
        audio = FakeAudio(stream, start, sound, self.frames)
        self.opened.append(audio)
        return audio

    def add(self, *titles: str) -> None:
        self.player.add(Track(t, f"https://x.example/{t}", 1) for t in titles)

    async def play_through(self, title: str) -> None:
        await eventually(lambda: ("started", title) in self.events.log and self.voice._after)
        self.voice.finish()


@pytest.fixture
async def rig() -> Rig:
    return Rig()


async def test_plays_in_order_then_announces_the_end_and_leaves_when_idle() -> None:
    rig = Rig(idle_timeout=0.2)
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    await rig.play_through("b")
    await eventually(lambda: ("leave", LeaveReason.IDLE) in rig.events.log)
    assert rig.events.log == [
        ("started", "a"),
        ("started", "b"),
        ("finished",),
        ("leave", LeaveReason.IDLE),
    ]
    assert rig.voice.calls == ["play https://x.example/a", "play https://x.example/b"]
    assert all(audio.cleaned for audio in rig.opened)
    assert rig.events.changes > 0
    assert not rig.player.running


async def test_a_track_that_fails_to_resolve_is_reported_and_skipped(rig: Rig) -> None:
    rig.streams.broken.add("https://x.example/b")
    rig.player.start()
    rig.add("a", "b", "c")
    await rig.play_through("a")
    await rig.play_through("c")
    assert ("failed", "b", "that link is gone.") in rig.events.log
    await rig.player.close()


async def test_the_end_of_the_queue_is_announced_after_a_track_that_failed(rig: Rig) -> None:
    """Autoplay queues a related track at each end of the queue: one that fails to
    resolve must not end autoplay for good."""
    related = iter(["broken", "good"])

    async def queue_finished(player: Player) -> None:  # as Sessions does with autoplay on
        rig.events.log.append(("finished",))
        if title := next(related, None):
            player.add([Track(title, f"https://x.example/{title}", 1, autoplay=True)])

    rig.events.queue_finished = queue_finished  # type: ignore[method-assign]
    rig.streams.broken.add("https://x.example/broken")
    rig.player.start()
    rig.add("seed")
    await rig.play_through("seed")
    await rig.play_through("good")
    await eventually(lambda: rig.events.log.count(("finished",)) == 3)
    assert rig.events.log == [
        ("started", "seed"),
        ("finished",),
        ("failed", "broken", "that link is gone."),
        ("finished",),
        ("started", "good"),
        ("finished",),
    ]
    await rig.player.close()


async def test_a_silent_stream_is_reported_and_not_looped(rig: Rig) -> None:
    rig.player.queue.loop = LoopMode.TRACK
    rig.frames = 0
    rig.player.start()
    rig.add("dead", "next")
    await eventually(lambda: ("started", "dead") in rig.events.log)
    rig.frames = 100
    rig.voice.finish()
    await eventually(lambda: ("started", "next") in rig.events.log)
    assert ("failed", "dead", "the stream couldn't be read.") in rig.events.log
    await rig.player.close()


async def test_a_stream_that_breaks_off_is_reported(rig: Rig) -> None:
    rig.player.start()
    rig.add("a", "b")
    await eventually(lambda: ("started", "a") in rig.events.log)
    rig.voice.finish(RuntimeError("ffmpeg exited with 1"))
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert ("failed", "a", "the stream broke off.") in rig.events.log
    await rig.player.close()


async def test_a_track_that_ends_well_short_of_its_length_goes_on_with_a_fresh_stream(
    rig: Rig,
) -> None:
    """FFmpeg ended 2 s into a minute-long track (its stream URL expired): it goes on from
    2 s as the same play (and ends quietly if nothing is left there); one that ends near
    its end does not."""
    rig.player.start()
    rig.player.add([Track("long", "https://x.example/long", 1, duration=60.0)])
    rig.player.add([Track("short", "https://x.example/short", 1, duration=6.0)])
    await eventually(lambda: ("started", "long") in rig.events.log and rig.voice._after)
    rig.frames = 0  # nothing there: that was its end after all (a length said too long)
    rig.voice.finish()
    await eventually(lambda: len(rig.opened) == 2 and rig.voice._after)
    assert rig.opened[1].start == 2.0
    rig.frames = 100  # the short one ends 4 s early: near enough
    rig.voice.finish()
    await rig.play_through("short")
    await eventually(lambda: ("finished",) in rig.events.log)
    assert [entry for entry in rig.events.log if entry[0] != "finished"] == [
        ("started", "long"),
        ("started", "short"),
    ]
    assert len(rig.opened) == 3, "long (twice), then short once"
    await rig.player.close()


async def test_loop_track_repeats_and_skip_moves_on(rig: Rig) -> None:
    rig.player.queue.loop = LoopMode.TRACK
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    await eventually(lambda: rig.events.log.count(("started", "a")) == 2)
    assert rig.player.skip().title == "a"
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert not any(entry[0] == "failed" for entry in rig.events.log), "a skip is no failure"
    await rig.player.close()


async def test_seek_and_filter_reopen_the_audio_and_keep_pause(rig: Rig) -> None:
    with pytest.raises(MusicError, match="Nothing is playing"):
        await rig.player.seek(10)
    rig.player.start()
    rig.add("a", "b")
    await eventually(lambda: rig.player.playing)
    rig.player.pause()
    await rig.player.seek(42.5)
    assert rig.opened[-1].restarts == [(42.5, Sound())]
    assert rig.player.paused and rig.voice.calls[-1] == "pause", "seeking doesn't resume"
    assert rig.player.position == 42.5
    await rig.player.set_filter(PRESETS["bassboost"])
    assert rig.opened[-1].restarts[-1] == (42.5, Sound(1.0, PRESETS["bassboost"]))
    rig.player.resume()
    await rig.play_through("a")
    await eventually(lambda: len(rig.opened) == 2)
    assert rig.opened[1].sound.filter == PRESETS["bassboost"], "the filter stays on"
    await rig.player.set_filter(None)
    assert rig.opened[1].restarts[-1][1].plain
    await rig.player.close()


async def test_pause_resume_and_volume(rig: Rig) -> None:
    with pytest.raises(MusicError, match="Nothing is playing"):
        rig.player.pause()
    rig.player.start()
    rig.add("a")
    await eventually(lambda: rig.player.playing)
    rig.player.pause()
    with pytest.raises(MusicError, match="already paused"):
        rig.player.pause()
    assert rig.player.paused
    rig.player.resume()
    with pytest.raises(MusicError, match="isn't paused"):
        rig.player.resume()
    await rig.player.set_volume(50)
    assert rig.opened[-1].restarts == [(2.0, Sound(0.5))], "re-opened where it was"
    with pytest.raises(MusicError, match="from 0 to 200"):
        await rig.player.set_volume(201)
    assert rig.voice.calls[-2:] == ["pause", "resume"]
    assert rig.player.position == 2.0
    await rig.player.close()
    assert rig.voice.calls[-1] == "stop"


async def test_a_volume_and_a_filter_changed_at_once_both_stay_on(rig: Rig) -> None:
    rig.player.start()
    rig.add("a")
    await eventually(lambda: rig.player.playing)
    audio, entered = rig.opened[0], []
    restart = audio.restart

    def slow_first(start: float, sound: Sound) -> None:
        entered.append(sound)
        if len(entered) == 1:  # the first FFmpeg takes longer to start
            time.sleep(0.3)
        restart(start, sound)

    audio.restart = slow_first  # type: ignore[method-assign]
    await asyncio.gather(rig.player.set_volume(50), rig.player.set_filter(PRESETS["8d"]))
    assert audio.sound == Sound(0.5, PRESETS["8d"]), "the later change plays"
    await rig.player.close()


async def test_restored_track_starts_at_its_position_and_paused(rig: Rig) -> None:
    rig.player.queue.restore(Track("a", "https://x.example/a", 1), [], LoopMode.OFF)
    rig.player.volume = 150
    rig.player.start(position=30.0, paused=True)
    await eventually(lambda: rig.player.playing)
    assert (rig.opened[0].start, rig.opened[0].sound) == (30.0, Sound(1.5))
    assert rig.voice.calls == ["play https://x.example/a", "pause"]
    assert rig.player.position == 32.0
    await rig.player.close()


async def test_alone_timer_asks_to_leave_unless_someone_comes_back() -> None:
    rig = Rig(alone_timeout=0.1)
    loop = asyncio.get_running_loop()
    rig.player.set_alone(True)
    rig.player.set_alone(False)  # someone came back: that countdown is off
    await asyncio.sleep(0.05)
    again = loop.time()
    rig.player.set_alone(True)
    rig.player.set_alone(True)  # still alone: the countdown already running goes on
    await eventually(lambda: rig.events.log == [("leave", LeaveReason.ALONE)])
    assert loop.time() - again >= 0.099, "the first countdown, cancelled, did not fire"


async def test_a_voice_connection_that_cannot_come_back_ends_the_player(rig: Rig) -> None:
    rig.voice.connected = False
    rig.events.recoverable = False
    rig.player.start()
    rig.add("a")
    await eventually(lambda: not rig.player.running)
    assert rig.events.log == [("recover", 0.0)]
    assert rig.opened[0].cleaned and rig.voice.calls == []


async def test_a_dropped_connection_resumes_the_track_where_it_stopped(rig: Rig) -> None:
    rig.player.start()
    rig.add("a", "b")
    await eventually(lambda: rig.voice.calls == ["play https://x.example/a"])
    rig.voice.connected = False  # discord.py's audio thread gives up on a lost connection
    rig.voice.finish()
    await eventually(lambda: len(rig.opened) == 2)
    assert rig.opened[1].stream.url == "https://x.example/a"
    assert rig.opened[1].start == pytest.approx(2.0), "100 frames of 20 ms were played"
    assert ("recover", pytest.approx(2.0)) in rig.events.log
    rig.voice.finish()
    await eventually(lambda: len(rig.opened) == 3)
    assert rig.opened[2].stream.url == "https://x.example/b" and rig.opened[2].start == 0


async def test_a_connection_that_stays_down_stops_the_waiting_track(
    monkeypatch: pytest.MonkeyPatch, rig: Rig
) -> None:
    """discord.py's audio thread waits in silence for a 4015 resume; the player does not."""
    monkeypatch.setattr(voice_watch, "DROP_GRACE", 0.1)
    monkeypatch.setattr(voice_watch, "WATCH_EVERY", 0.02)
    rig.player.start()
    rig.add("a")
    await eventually(lambda: rig.voice.calls == ["play https://x.example/a"])
    rig.voice.connected = False
    await eventually(lambda: len(rig.opened) == 2)
    assert rig.voice.calls[1] == "stop" and rig.opened[1].stream.url == "https://x.example/a"


async def test_every_queue_edit_through_the_player_is_saved(rig: Rig) -> None:
    rig.add("a", "b", "c")
    assert rig.events.changes == 1
    edits: list[Callable[[], object]] = [
        lambda: rig.player.remove(3),
        lambda: rig.player.move(2, 1),
        rig.player.shuffle,
        rig.player.set_loop,
        lambda: rig.player.set_loop(LoopMode.OFF),
        rig.player.clear,
    ]
    for number, edit in enumerate(edits, start=2):
        edit()
        assert rig.events.changes == number, edit
    assert rig.player.queue.upcoming == () and rig.player.queue.loop is LoopMode.OFF
    with pytest.raises(MusicError):
        rig.player.remove(1)
    assert rig.events.changes == len(edits) + 1, "a refused edit changes nothing to save"
