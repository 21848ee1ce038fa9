"""Stand-ins for YouTube's video and mix extractors in yt-dlp, over local media.

:class:`FakeVideoIE` answers ``https://www.youtube.com/watch?v=ID`` with the local
media URL registered for ``ID`` (:attr:`FakeYouTube.videos`); :class:`FakeMixIE` answers
the mix playlist ``watch?v=ID&list=RDID`` with the ids registered as related to
``ID`` (:attr:`FakeYouTube.mixes`), as flat watch-URL entries the way YouTube lists
them. Both are put first among yt-dlp's extractors by :func:`register_fake_youtube`,
so nothing reaches YouTube; :attr:`FakeYouTube.requested` records every URL asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yt_dlp.globals
from yt_dlp.extractor import import_extractors
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError


def watch_url(video: str) -> str:
    return f"https://www.youtube.com/watch?v={video}"


@dataclass
class FakeYouTube:
    """What the fake extractors know: id → (title, media URL, seconds), id → related ids,
    and the ids listed (in mixes) whose video is unavailable."""

    videos: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    mixes: dict[str, list[str]] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    requested: list[str] = field(default_factory=list)


class FakeVideoIE(InfoExtractor):
    IE_NAME = "fakeyoutube"
    _VALID_URL = r"https://www\.youtube\.com/watch\?v=(?P<id>[\w-]{11})$"
    site: ClassVar[FakeYouTube] = FakeYouTube()

    def _real_extract(self, url: str) -> dict[str, Any]:
        self.site.requested.append(url)
        video = self._match_id(url)
        if video not in self.site.videos or video in self.site.unavailable:
            raise ExtractorError("Video unavailable", expected=True)
        title, media, seconds = self.site.videos[video]
        return {
            "id": video,
            "title": title,
            "url": media,
            "ext": "ogg",
            "acodec": "opus",
            "vcodec": "none",
            "duration": seconds,
        }


class FakeMixIE(InfoExtractor):
    IE_NAME = "fakeyoutube:mix"
    _VALID_URL = r"https://www\.youtube\.com/watch\?v=(?P<id>[\w-]{11})&list=RD(?P=id)$"
    site: ClassVar[FakeYouTube] = FakeVideoIE.site

    def _real_extract(self, url: str) -> dict[str, Any]:
        self.site.requested.append(url)
        video = self._match_id(url)
        if video not in self.site.mixes:
            raise ExtractorError("The playlist does not exist", expected=True)
        entries = [
            self.url_result(
                watch_url(related), video_id=related, video_title=self.site.videos[related][0]
            )
            for related in self.site.mixes[video]
        ]
        return self.playlist_result(entries, f"RD{video}", f"Mix - {video}")


def register_fake_youtube() -> tuple[FakeYouTube, Callable[[], None]]:
    """Put the fake extractors first among yt-dlp's; returns what they know and the undo."""
    import_extractors()
    context = yt_dlp.globals.extractors
    old = context.value
    site = FakeVideoIE.site = FakeMixIE.site = FakeYouTube()
    context.value = {"FakeMixIE": FakeMixIE, "FakeVideoIE": FakeVideoIE, **old}

    def undo() -> None:
        context.value = old

    return site, undo
