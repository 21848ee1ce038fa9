"""What a /play query means, and which resolver answers it.

:class:`Lookup` owns the resolvers the Music cog plays from, built from the settings:
yt-dlp's (:mod:`cogs.music.sources`, also the players' streams), Spotify's
(:mod:`cogs.music.spotify`) and the spotify.link expander (:mod:`cogs.music.shortlinks`).
It starts them with the cog and closes them at shutdown, and routes each query: a
short link or an open.spotify.com link to Spotify, another link to yt-dlp, words to
a search.
"""

from __future__ import annotations

from collections.abc import Callable

import spotipy

from cogs.music.errors import MusicError
from cogs.music.ffmpeg import ffprobe_for
from cogs.music.shortlinks import ShortLinks, is_short_link
from cogs.music.sources import Resolver
from cogs.music.spotify import SpotifyResolver, make_client
from cogs.music.tracks import Found
from cogs.music.urls import (
    AddressPolicy,
    link_to_play,
    looks_like_url,
    mix_video,
    parse_spotify,
    with_scheme,
)
from cogs.music.youtube import readable_cookies
from config import Settings
from utils.ytdlp_args import parse_extractor_args

MAX_QUERY = 500
MIX_NOTE = "Only this video, not YouTube's endless mix."


class Lookup:
    """The resolvers behind /play (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.resolver = Resolver(
            search_prefix=settings.music_search_prefix,
            timeout=settings.music_resolve_timeout,
            policy=AddressPolicy(
                allow_private=settings.music_allow_private_urls,
                allowed_hosts=frozenset(settings.music_allowed_hosts),
                time_limit=min(settings.music_resolve_timeout, 10.0),
            ),
            ffprobe=ffprobe_for(settings.music_ffmpeg),
            cookies=readable_cookies(settings.music_ytdlp_cookies),
            extractor_args=parse_extractor_args(settings.music_ytdlp_extractor_args),
        )
        self.spotify = SpotifyResolver(
            self._spotify_factory(),
            search_target=self.resolver.search_target,
            timeout=settings.music_resolve_timeout,
        )
        self.short_links = ShortLinks(
            self.resolver, timeout=min(settings.music_resolve_timeout, 10.0)
        )

    def _spotify_factory(self) -> Callable[[], spotipy.Spotify] | None:
        client_id, secret = self.settings.spotipy_client_id, self.settings.spotipy_client_secret
        if not client_id or secret is None:
            return None
        timeout = min(self.settings.music_resolve_timeout, 15.0)
        return lambda: make_client(client_id, secret.get_secret_value(), timeout=timeout)

    async def start(self) -> None:
        await self.resolver.start()
        await self.short_links.start()

    async def close(self) -> None:
        self.spotify.close()
        await self.short_links.close()
        await self.resolver.close()

    def checked(self, query: str) -> str:
        """``query`` as :meth:`tracks` reads it (a link's ``<...>`` taken off, a link typed
        without a scheme given one); MusicError at once for what is refused without a
        lookup: nothing or too much, a malformed link or one with credentials, a Spotify
        link the bot cannot play.  /play asks before it joins voice, so such a query
        never takes the bot in and out of the channel."""
        query = query.strip()
        if query.startswith("<") and query.endswith(">"):  # a link wrapped to hide its preview
            query = query[1:-1].strip()
        if not query:
            raise MusicError("Tell me what to play: a link, or words to search for.")
        if len(query) > MAX_QUERY:
            raise MusicError(f"That's too long: keep it to {MAX_QUERY} characters.")
        query = with_scheme(query)  # `youtu.be/…` typed as is: a link, not words to search
        if is_short_link(query):
            link_to_play(query)
            self.spotify.check()
        elif link := parse_spotify(query):
            self.spotify.check(link)
        elif looks_like_url(query):
            link_to_play(query)
        return query

    async def tracks(self, query: str, requester_id: int, limit: int) -> Found:
        """The tracks ``query`` names (at most ``limit``); MusicError when it can't be
        played."""
        query = self.checked(query)
        if is_short_link(query):
            link = await self.short_links.expand(link_to_play(query))
            return await self.spotify.tracks(link, requester_id, limit)
        if link := parse_spotify(query):
            return await self.spotify.tracks(link, requester_id, limit)
        if looks_like_url(query):
            link = link_to_play(query)
            if video := mix_video(link):  # a mix is made up as it plays: the video is meant
                found = await self.resolver.tracks(video, requester_id, limit)
                return found._replace(note=MIX_NOTE)
            return await self.resolver.tracks(link, requester_id, limit)
        return Found(None, [await self.resolver.search(query, requester_id)])
