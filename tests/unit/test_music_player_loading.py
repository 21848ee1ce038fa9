"""The play loop while the next track's stream is still being resolved."""

from __future__ import annotations

import asyncio
import threading

from cogs.music.filters import PRESETS, Sound
from cogs.music.tracks import LoopMode, Stream, Track
from tests.conftest import eventually
from tests.unit.test_music_player import FakeAudio, Rig, Streams


class SlowStreams(Streams):
    """Streams whose ``slow`` sources resolve only once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.slow: set[str] = set()
        self.release = asyncio.Event()
        self.waiting: list[str] = []

    async def stream(self, track: Track) -> Stream:
        if track.source in self.slow:
            self.waiting.append(track.source)
            await self.release.wait()
        return await super().stream(track)


class SlowRig(Rig):
    """A rig whose track ``b`` loads until ``slow.release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = self.streams = self.player.loader.streams = SlowStreams()
        self.slow.slow.add("https://x.example/b")


async def test_a_track_still_loading_can_be_skipped() -> None:
    rig = SlowRig()
    rig.player.queue.loop = LoopMode.QUEUE
    rig.player.start()
    rig.add("a", "b", "c")
    await rig.play_through("a")
    await eventually(lambda: rig.slow.waiting)
    assert rig.player.skip().title == "b"
    await eventually(lambda: ("started", "c") in rig.events.log)
    assert not any(entry[0] == "failed" for entry in rig.events.log), "a skip is no failure"
    assert "play https://x.example/b" not in rig.voice.calls
    assert [t.title for t in rig.player.queue.upcoming] == ["a", "b"], "it stays in the loop"
    await rig.player.close()


async def test_a_track_still_loading_can_be_paused() -> None:
    rig = SlowRig()
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    await eventually(lambda: rig.slow.waiting)
    assert rig.player.pause().title == "b"
    rig.slow.release.set()
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert rig.voice.calls[-2:] == ["play https://x.example/b", "pause"]
    assert rig.player.paused
    await rig.player.close()


async def test_a_restored_track_keeps_its_position_while_it_loads() -> None:
    """A save while it loads (a track queued meanwhile) must not reset it to the start."""
    rig = SlowRig()
    rig.player.queue.restore(Track("b", "https://x.example/b", 1), [], LoopMode.OFF)
    rig.player.start(position=62.0)
    await eventually(lambda: rig.slow.waiting)
    assert rig.player.position == 62.0
    rig.slow.release.set()
    await eventually(lambda: rig.opened)
    assert rig.opened[0].start == 62.0
    await rig.player.close()


class OpeningRig(Rig):
    """A rig whose FFmpeg for track ``b`` opens only once ``opening`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.opening, self.blocked = threading.Event(), threading.Event()

    def open(self, stream: Stream, start: float, sound: Sound) -> FakeAudio:
        if stream.url.endswith("/b"):
            self.blocked.set()
            self.opening.wait(5)
        return super().open(stream, start, sound)


async def test_a_seek_while_the_track_resolves_opens_it_there() -> None:
    rig = SlowRig()
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    await eventually(lambda: rig.slow.waiting)
    assert (await rig.player.seek(30.0)).title == "b"
    assert rig.player.position == 30.0
    rig.slow.release.set()
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert (rig.opened[-1].start, rig.opened[-1].restarts) == (30.0, [])
    await rig.player.close()


async def test_a_seek_or_a_filter_while_ffmpeg_opens_the_track_opens_it_again() -> None:
    rig = OpeningRig()
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    await asyncio.to_thread(rig.blocked.wait, 5)
    assert rig.player.loading
    await rig.player.seek(40.0)
    await rig.player.set_filter(PRESETS["8d"])
    rig.opening.set()
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert rig.opened[-1].restarts == [(40.0, Sound(1.0, PRESETS["8d"]))]
    await rig.player.close()


async def test_a_skip_while_ffmpeg_opens_the_track_skips_it() -> None:
    rig = OpeningRig()
    rig.player.start()
    rig.add("a", "b", "c")
    await rig.play_through("a")
    await asyncio.to_thread(rig.blocked.wait, 5)
    assert rig.player.skip().title == "b"
    rig.opening.set()
    await eventually(lambda: ("started", "c") in rig.events.log)
    assert ("started", "b") not in rig.events.log and rig.opened[1].cleaned
    await rig.player.close()


class KeptStreams(Streams):
    """Streams kept on their track and reused, as the resolver does within STREAM_TTL."""

    async def stream(self, track: Track) -> Stream:
        if track.stream is None:
            track.stream = await super().stream(track)
        return track.stream


async def test_a_kept_stream_that_plays_nothing_is_resolved_afresh_once() -> None:
    """A loop's repeat reuses its stream; if that plays nothing (its link expired) the track
    is resolved anew and tried once more, as the same play, then reported if still silent."""
    rig = Rig()
    rig.streams = rig.player.loader.streams = KeptStreams()
    rig.player.queue.loop = LoopMode.TRACK
    rig.player.start()
    rig.add("a", "b")
    await rig.play_through("a")
    rig.frames = 0
    await eventually(lambda: len(rig.opened) == 2 and rig.voice._after)
    rig.voice.finish()  # the kept stream played nothing: resolved afresh
    await eventually(lambda: len(rig.opened) == 3 and rig.voice._after)
    assert [audio.stream.url for audio in rig.opened] == ["https://x.example/a"] * 3
    assert rig.opened[2].stream is not rig.opened[1].stream
    rig.frames = 100
    rig.voice.finish()  # nothing from the fresh one either: reported, the queue goes on
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert rig.events.log == [
        ("started", "a"),
        ("started", "a"),  # the repeat, announced once
        ("failed", "a", "the stream couldn't be read."),
        ("started", "b"),
    ]
    await rig.player.close()


async def test_a_kept_stream_that_plays_nothing_after_a_drop_is_resolved_afresh_once() -> None:
    """A track resumed after a voice drop plays on from its kept stream; if that plays
    nothing (its link expired meanwhile) it is resolved anew and tried once more from the
    same position, then reported if still silent."""
    rig = Rig()
    rig.streams = rig.player.loader.streams = KeptStreams()
    rig.player.start()
    rig.add("a", "b")
    await eventually(lambda: rig.voice.calls == ["play https://x.example/a"])
    rig.frames = 0  # from here on, nothing plays
    rig.voice.connected = False  # the connection drops 2 s in
    rig.voice.finish()
    await eventually(lambda: len(rig.opened) == 2 and rig.voice._after)
    assert rig.opened[1].stream is rig.opened[0].stream, "resumed from the kept link"
    rig.voice.finish()  # the kept link played nothing: resolved afresh, from 2 s again
    await eventually(lambda: len(rig.opened) == 3 and rig.voice._after)
    assert rig.opened[2].stream is not rig.opened[1].stream
    assert rig.opened[2].start == rig.opened[1].start == 2.0
    rig.frames = 100
    rig.voice.finish()  # nothing from the fresh one either: reported, the queue goes on
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert [entry for entry in rig.events.log if entry[0] != "recover"] == [
        ("started", "a"),
        ("failed", "a", "the stream couldn't be read."),
        ("started", "b"),
    ]
    await rig.player.close()


async def test_a_drop_at_the_very_end_of_a_track_ends_it_quietly() -> None:
    rig = Rig()
    rig.streams = rig.player.loader.streams = KeptStreams()
    rig.player.start()
    rig.player.add([Track("a", "https://x.example/a", 1, duration=3.0)])
    rig.add("b")
    await eventually(lambda: rig.voice.calls == ["play https://x.example/a"])
    rig.frames = 0
    rig.voice.connected = False  # the connection drops 2 s into 3: near enough its end
    rig.voice.finish()
    await eventually(lambda: len(rig.opened) == 2 and rig.voice._after)
    rig.voice.finish()  # nothing left there: it had ended
    await eventually(lambda: ("started", "b") in rig.events.log)
    assert [audio.stream.url for audio in rig.opened] == [
        "https://x.example/a",
        "https://x.example/a",
        "https://x.example/b",
    ]
    assert ("failed", "a", "the stream couldn't be read.") not in rig.events.log
    await rig.player.close()
