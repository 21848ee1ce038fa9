"""Spotify's short links (``spotify.link/…``, what its share buttons give on phones): the
open.spotify.com link each one redirects to.

A short link answers a HEAD request with a redirect; only its ``Location`` is read, the
redirect is not followed.  The request goes through the resolver's checked egress
(:class:`~cogs.music.egress.Egress`, every address checked) under a timeout.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

import aiohttp

from cogs.music.egress import REFUSED
from cogs.music.errors import MusicError
from cogs.music.sources import Resolver
from cogs.music.urls import PrivateAddress, SpotifyLink, parse_spotify

log = logging.getLogger(__name__)

HOSTS = frozenset({"spotify.link", "spotify.app.link"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
NOT_SPOTIFY = "That spotify.link doesn't lead to a Spotify track, album or playlist."


def is_short_link(text: str) -> bool:
    try:
        host = urlsplit(text.strip()).hostname
    except ValueError:
        return False
    return host in HOSTS


class ShortLinks:
    """Expands short links through ``resolver``'s egress; ``start`` it before use."""

    def __init__(self, resolver: Resolver, *, timeout: float) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def expand(self, url: str) -> SpotifyLink:
        """The Spotify link ``url`` redirects to; MusicError if it leads elsewhere or
        cannot be read."""
        if self._session is None:
            raise RuntimeError("ShortLinks.start was not called")
        await self.resolver.check(url)
        try:
            async with self._session.head(
                url, proxy=self.resolver.fetches.url, allow_redirects=False
            ) as answer:
                status, reason = answer.status, answer.reason
                location = answer.headers.get("Location")
        except aiohttp.ClientHttpProxyError as error:  # an https link's CONNECT refused
            if error.status == 403 and error.message == REFUSED:
                raise PrivateAddress() from error
            log.info("could not expand the short link %r: %r", url, error)
            raise MusicError("I couldn't open that spotify.link; try again later.") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            log.info("could not expand the short link %r: %r", url, error)
            raise MusicError("I couldn't open that spotify.link; try again later.") from error
        if status == 403 and reason == REFUSED:
            raise PrivateAddress()
        link = parse_spotify(urljoin(url, location)) if status in _REDIRECTS and location else None
        if link is None:
            log.info("the short link %r answered %s to %r", url, status, location)
            raise MusicError(NOT_SPOTIFY)
        return link
