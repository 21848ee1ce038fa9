"""Autoplay's choice of the next related track: recent and failed tracks are passed over."""

from __future__ import annotations

from typing import cast

from cogs.music.autoplay import MAX_FAILURES, Autoplay, mix_url
from cogs.music.sources import Resolver
from cogs.music.tracks import Found, Track


def video(name: str) -> Track:
    """A watch link; ``name`` is padded to a YouTube id (11 characters)."""
    return Track(name, f"https://www.youtube.com/watch?v={name:x<11}", 1)


class Mixes:
    """The resolver's part autoplay uses: each video's mix, as flat tracks."""

    def __init__(self, related: list[str]) -> None:
        self.related = related
        self.asked: list[str] = []

    async def tracks(self, url: str, requester_id: int, limit: int) -> Found:
        self.asked.append(url)
        return Found("Mix", [video(name) for name in self.related][:limit])


async def test_related_tracks_that_failed_are_passed_over_until_too_many_fail() -> None:
    names = ["seed", *(f"broken{n}" for n in range(MAX_FAILURES)), "good"]
    mixes = Mixes(names)
    autoplay = Autoplay(cast(Resolver, mixes))
    autoplay.played(5, video("seed"))
    for _ in range(MAX_FAILURES):
        track = await autoplay.related(5)
        assert track is not None and track.title.startswith("broken") and track.autoplay
        autoplay.failed(5, track)
    assert await autoplay.related(5) is None, "it stops looking after that many in a row"
    assert mixes.asked == [mix_url("seedxxxxxxx")] * MAX_FAILURES

    autoplay.played(5, video("seed"))  # a track played again: autoplay goes on
    track = await autoplay.related(5)
    assert track is not None and track.title == "good", "the failed ones are not picked again"
    autoplay.forget(5)
    assert await autoplay.related(5) is None
