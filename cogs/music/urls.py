"""What a /play query is (Spotify link, other URL, search words) and whether a URL is safe.

Only http(s) URLs are played.  Unless private URLs are allowed, a URL whose
host resolves to a private, loopback, link-local or otherwise non-global
address is refused, so people cannot make the bot probe the network it runs in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from cogs.music.errors import MusicError

_SPOTIFY = re.compile(
    r"^(?:https?://open\.spotify\.com/(?:intl-[\w-]+/)?(?:embed/)?(?P<kind>[a-z]+)/(?P<id>[A-Za-z0-9]+)"
    r"|spotify:(?P<uri_kind>[a-z]+):(?P<uri_id>[A-Za-z0-9]+))(?:[/?#].*)?$"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class SpotifyLink:
    kind: str
    """track, album, playlist (or another kind we refuse with a message)."""
    id: str

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/{self.kind}/{self.id}"


def parse_spotify(text: str) -> SpotifyLink | None:
    match = _SPOTIFY.match(text.strip())
    if match is None:
        return None
    return SpotifyLink(match["kind"] or match["uri_kind"], match["id"] or match["uri_id"])


def looks_like_url(text: str) -> bool:
    """A scheme (``x://``) or a bare ``www.`` host: anything else is a search."""
    text = text.strip()
    return bool(_SCHEME.match(text)) or text.lower().startswith("www.")


def normalise_url(text: str) -> str:
    """Give a bare ``www.`` host a scheme and refuse every scheme but http(s)."""
    url = text.strip()
    if url.lower().startswith("www."):
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MusicError("I can only play http:// and https:// links.")
    return url


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 unwrapped)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url(url: str, *, allow_private: bool, time_limit: float) -> None:
    """Raise MusicError unless ``url`` is http(s) and (if required) points to public hosts only."""
    parts = urlsplit(normalise_url(url))
    if allow_private:
        return
    host = parts.hostname or ""
    for address in await _addresses(host, parts.port, time_limit):
        if not is_public(address):
            raise MusicError(
                "That link points to a private or local network address; I won't open it."
            )


async def _addresses(host: str, port: int | None, time_limit: float) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(time_limit):
            infos = await loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as error:
        raise MusicError(f"I couldn't look up the host `{host}`.") from error
    return [str(info[4][0]) for info in infos]
