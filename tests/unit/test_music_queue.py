"""The music queue: bounded, loop modes, skip, remove, move, shuffle, pages."""

from __future__ import annotations

import random

import pytest

from cogs.music.errors import MusicError
from cogs.music.queue import TrackQueue
from cogs.music.tracks import LoopMode, Track


def tracks(*names: str) -> list[Track]:
    return [
        Track(title=name, source=f"https://example.com/{name}", requester_id=1) for name in names
    ]


def titles(queue: TrackQueue) -> list[str]:
    return [track.title for track in queue.upcoming]


def test_add_stops_at_the_limit_and_refuses_a_full_queue() -> None:
    queue = TrackQueue(3)
    assert queue.add(tracks("a", "b")) == 2
    assert queue.add(tracks("c", "d", "e")) == 1
    assert titles(queue) == ["a", "b", "c"]
    assert queue.room == 0
    with pytest.raises(MusicError, match=r"The queue is full \(3 tracks\)"):
        queue.add(tracks("f"))


def test_advance_without_loop_walks_the_queue_once() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b"))
    assert queue.advance().title == "a"
    assert queue.advance().title == "b"
    assert queue.advance() is None
    assert queue.current is None


def test_loop_track_repeats_unless_skipped() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b"))
    queue.loop = LoopMode.TRACK
    first = queue.advance()
    assert queue.advance() is first
    assert queue.advance(skipped=True).title == "b"


def test_loop_queue_puts_finished_tracks_back_at_the_end() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b"))
    queue.loop = LoopMode.QUEUE
    played = [queue.advance().title for _ in range(5)]
    assert played == ["a", "b", "a", "b", "a"]
    assert titles(queue) == ["b"]


def test_loop_modes_cycle() -> None:
    assert [LoopMode.OFF.next(), LoopMode.TRACK.next(), LoopMode.QUEUE.next()] == [
        LoopMode.TRACK,
        LoopMode.QUEUE,
        LoopMode.OFF,
    ]


def test_remove_and_move_use_one_based_positions() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b", "c", "d"))
    assert queue.remove(2).title == "b"
    assert queue.move(3, 1).title == "d"
    assert titles(queue) == ["d", "a", "c"]
    assert queue.move(1, 3).title == "d"
    assert titles(queue) == ["a", "c", "d"]
    with pytest.raises(MusicError, match="Pick a position from 1 to 3"):
        queue.remove(4)
    with pytest.raises(MusicError, match="Pick a position from 1 to 3"):
        queue.move(0, 1)


@pytest.mark.parametrize(
    ("source", "destination"), [(1, 999), (1, 0), (999, 1), (0, 2), (-1, 1), (2, -3)]
)
def test_a_refused_move_changes_nothing(source: int, destination: int) -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b", "c"))
    with pytest.raises(MusicError, match="Pick a position from 1 to 3"):
        queue.move(source, destination)
    assert titles(queue) == ["a", "b", "c"], "every track is still there, in order"


def test_a_refused_remove_changes_nothing() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b"))
    for position in (0, -1, 3):
        with pytest.raises(MusicError, match="Pick a position from 1 to 2"):
            queue.remove(position)
    assert titles(queue) == ["a", "b"]


def test_remove_from_an_empty_queue() -> None:
    with pytest.raises(MusicError, match="The queue is empty"):
        TrackQueue(5).remove(1)
    with pytest.raises(MusicError, match="The queue is empty"):
        TrackQueue(5).move(1, 1)


def test_shuffle_keeps_the_tracks_and_needs_two() -> None:
    queue = TrackQueue(10, rng=random.Random(4))
    queue.add(tracks(*"abcdefgh"))
    queue.shuffle()
    assert sorted(titles(queue)) == list("abcdefgh")
    assert titles(queue) != list("abcdefgh")
    queue.clear()
    queue.add(tracks("x"))
    with pytest.raises(MusicError, match="nothing to shuffle"):
        queue.shuffle()


def test_clear_keeps_the_current_track_and_reset_drops_it() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b", "c"))
    queue.advance()
    assert queue.clear() == 2
    with pytest.raises(MusicError, match="nothing to clear"):
        queue.clear()
    assert queue.current is not None and not queue.upcoming
    queue.reset()
    assert queue.current is None


def test_pages_are_clamped_and_numbered() -> None:
    queue = TrackQueue(50)
    queue.add(tracks(*(f"t{i}" for i in range(1, 24))))
    entries, page, pages = queue.page(3, per_page=10)
    assert (page, pages) == (3, 3)
    assert [number for number, _ in entries] == [21, 22, 23]
    assert queue.page(99, per_page=10)[1] == 3
    assert queue.page(0, per_page=10)[1] == 1
    assert TrackQueue(5).page(1) == ([], 1, 1)


def test_restore_trims_to_the_limit() -> None:
    queue = TrackQueue(2)
    current, *rest = tracks("a", "b", "c", "d")
    queue.restore(current, rest, LoopMode.QUEUE)
    assert queue.current is current
    assert titles(queue) == ["b", "c"]
    assert queue.loop is LoopMode.QUEUE


def test_queued_by_counts_what_a_member_has_waiting() -> None:
    queue = TrackQueue(10)
    queue.add(tracks("a", "b"))
    queue.add([Track("c", "https://example.com/c", 2), Track("d", "https://example.com/d", 1)])
    queue.add([Track("mix", "https://example.com/mix", 1, autoplay=True)])
    queue.advance()  # "a" plays: no longer waiting
    assert (queue.queued_by(1), queue.queued_by(2), queue.queued_by(3)) == (2, 1, 0)
