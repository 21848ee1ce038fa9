"""The per-guild track queue: bounded, with loop modes, shuffle, move and remove.

Pure logic, no Discord: positions users type are 1-based indices into the
upcoming tracks (the current track is not part of them).  Every edit checks
all its input before it changes anything: it happens whole or not at all.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from cogs.music.errors import MusicError
from cogs.music.tracks import LoopMode, Track


class TrackQueue:
    """The current track, the upcoming ones (at most ``limit``) and the loop mode."""

    def __init__(self, limit: int, *, rng: random.Random | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.current: Track | None = None
        self.loop = LoopMode.OFF
        self._upcoming: list[Track] = []
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._upcoming)

    @property
    def upcoming(self) -> Sequence[Track]:
        return tuple(self._upcoming)

    @property
    def room(self) -> int:
        return self.limit - len(self._upcoming)

    def queued_by(self, requester_id: int) -> int:
        """How many upcoming tracks ``requester_id`` asked for (autoplay's are nobody's)."""
        return sum(1 for t in self._upcoming if t.requester_id == requester_id and not t.autoplay)

    def add(self, tracks: Iterable[Track]) -> int:
        """Append tracks up to the limit; returns how many were added.

        Raises MusicError when the queue is already full.
        """
        if self.room <= 0:
            raise MusicError(f"The queue is full ({self.limit} tracks).")
        added = 0
        for track in tracks:
            if self.room <= 0:
                break
            self._upcoming.append(track)
            added += 1
        return added

    def advance(self, *, skipped: bool = False) -> Track | None:
        """Finish the current track and make the next one current (or None).

        Loop ``track`` repeats the current track unless it was skipped; loop
        ``queue`` puts it back at the end.
        """
        finished = self.current
        if finished is not None and self.loop is LoopMode.TRACK and not skipped:
            return finished
        if finished is not None and self.loop is LoopMode.QUEUE:
            self._upcoming.append(finished)
        self.current = self._upcoming.pop(0) if self._upcoming else None
        return self.current

    def remove(self, position: int) -> Track:
        return self._upcoming.pop(self._index(position))

    def move(self, source: int, destination: int) -> Track:
        """Move the track at ``source`` so that it ends up at ``destination``."""
        start, end = self._index(source), self._index(destination)
        track = self._upcoming.pop(start)
        self._upcoming.insert(end, track)
        return track

    def shuffle(self) -> None:
        if len(self._upcoming) < 2:
            raise MusicError("There is nothing to shuffle.")
        self._rng.shuffle(self._upcoming)

    def clear(self) -> int:
        """Drop the upcoming tracks (the current one keeps playing); returns how many."""
        if not self._upcoming:
            raise MusicError("There is nothing to clear.")
        count = len(self._upcoming)
        self._upcoming.clear()
        return count

    def reset(self) -> None:
        """Forget everything, the current track included."""
        self._upcoming.clear()
        self.current = None

    def restore(self, current: Track | None, upcoming: Iterable[Track], loop: LoopMode) -> None:
        """Load a saved queue (trimmed to the limit)."""
        self.current = current
        self._upcoming = list(upcoming)[: self.limit]
        self.loop = loop

    def page(self, number: int, per_page: int = 10) -> tuple[list[tuple[int, Track]], int, int]:
        """``(entries, page, pages)``: 1-based positions with tracks, the page clamped."""
        pages = max(1, -(-len(self._upcoming) // per_page))
        number = min(max(1, number), pages)
        start = (number - 1) * per_page
        entries = list(enumerate(self._upcoming[start : start + per_page], start=start + 1))
        return entries, number, pages

    def _index(self, position: int) -> int:
        if not self._upcoming:
            raise MusicError("The queue is empty.")
        if not 1 <= position <= len(self._upcoming):
            raise MusicError(f"Pick a position from 1 to {len(self._upcoming)}.")
        return position - 1
