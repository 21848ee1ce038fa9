"""What a /play query is (Spotify link, other URL, search words) and whether a URL is safe.

Only http(s) URLs are played, and only http(s) media (:func:`media_url`).  Unless
private URLs are allowed, a URL whose host resolves to a private, loopback,
link-local or otherwise non-global address is refused, so people cannot make the
bot probe the network it runs in.
:class:`AddressPolicy` owns that rule and the name lookups; the egress proxy
(:mod:`cogs.music.egress`) applies it to every connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from cogs.music.errors import MusicError

log = logging.getLogger(__name__)

# Playlist links from before 2018 name their owner first (`user/NAME/playlist/ID`,
# `spotify:user:NAME:playlist:ID`); Spotify still opens them.  Scheme and host match in
# any case (some phones and chat apps write them in capitals); paths and ids keep theirs.
_SPOTIFY = re.compile(
    r"^(?:(?i:https?://open\.spotify\.com)/(?:intl-[\w-]+/)?(?:embed/)?"
    r"(?:user/[^/?#]+/(?=playlist/))?(?P<kind>[a-z]+)/(?P<id>[A-Za-z0-9]+)"
    r"|(?i:spotify):(?:user:[^:]+:(?=playlist:))?(?P<uri_kind>[a-z]+):(?P<uri_id>[A-Za-z0-9]+))"
    r"(?:[/?#].*)?$"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Links people type without a scheme: a `www.` host, and the music sites' own links.
_BARE = re.compile(
    r"^(?:www\.|(?:open\.spotify\.com|spotify\.(?:app\.)?link|(?:m\.|music\.)?youtube\.com"
    r"|youtu\.be)/)",
    re.IGNORECASE,
)
_INVALID_URL = "That link isn't a valid URL."
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# IPv6 ranges no public site uses, whose IPv4 part Python's `is_global` does not look at:
# local-use NAT64 (RFC 8215), IPv4-compatible (deprecated) and IPv4-translated (SIIT);
# and site-local (fec0::/10, deprecated, still routed inside some networks), which it
# takes for global.
_NEVER_PUBLIC = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("fec0::/10"),
)


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
    """A scheme (``x://``), or a link typed without one (:func:`with_scheme`): anything
    else is a search."""
    text = text.strip()
    return bool(_SCHEME.match(text) or _BARE.match(text))


def with_scheme(text: str) -> str:
    """``text`` trimmed, with ``https://`` before a link typed without a scheme: a bare
    ``www.`` host, or a Spotify or YouTube link (``youtu.be/…``, ``open.spotify.com/…``)."""
    text = text.strip()
    return "https://" + text if _BARE.match(text) else text


YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"})
_MIX_PLACE = frozenset({"list", "index", "start_radio", "pp"})
"""What a link to a video in a list adds to the video's own link."""
_MUSIC_PLAYLIST = "RDCLAK"
"""How the ids of YouTube Music's own playlists begin: fixed lists, for all their ``RD``."""


def mix_video(url: str) -> str | None:
    """The video's own link if ``url`` opens a YouTube video in a mix (``watch?v=ID&list=RD…``,
    what YouTube's Mix links are), else None.  A mix is made up as it plays, so such a
    link means the video, as its page plays it; a playlist's (``list=PL…``, or
    ``RDCLAK…``: YouTube Music's own playlists, fixed lists) means the list."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    video = (host == "youtu.be" and parts.path.strip("/") != "") or (
        host in YOUTUBE_HOSTS and parts.path == "/watch" and "v" in params
    )
    listed = params.get("list", "")
    if not video or not listed.startswith("RD") or listed.startswith(_MUSIC_PLAYLIST):
        return None
    kept = [(key, value) for key, value in query if key not in _MIX_PLACE]
    return parts._replace(query=urlencode(kept)).geturl()


def normalise_url(text: str) -> str:
    """Give a link typed without a scheme one (:func:`with_scheme`) and refuse every
    scheme but http(s), and malformed URLs (``http://[::1``, a port that is not a number
    from 1 to 65535)."""
    url = with_scheme(text)
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError unless a number from 0 to 65535
    except ValueError:
        raise MusicError(_INVALID_URL) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MusicError("I can only play http:// and https:// links.")
    if port == 0:
        raise MusicError(_INVALID_URL)
    return url


def link_to_play(text: str) -> str:
    """A link someone asked to play, as :func:`normalise_url` makes it; MusicError if it
    carries credentials (``https://user:token@host/``): the link is shown with its track
    (now playing, ``/queue``) and kept in the log."""
    url = normalise_url(text)
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise MusicError(
            "That link holds a user name or password, which everyone here would see; "
            "send it without them."
        )
    return url


def media_url(url: str) -> str:
    """``url`` if FFmpeg and ffprobe may open it: http(s) only.  Any other scheme
    (``tcp://``, ``tls://``, ``rtmp://``...) would connect directly, past the egress proxy."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise MusicError("I can only play media that comes over http:// or https://.")
    return url


def is_public(address: str) -> bool:
    """True for a globally routable unicast address.  An IPv6 address that carries an IPv4
    one (mapped, 6to4, NAT64) counts as that IPv4 address: a NAT64 gateway or 6to4
    relay delivers to it, be it 10.0.0.1 or the cloud metadata service."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NEVER_PUBLIC):
            return False
        if ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        elif (inner := ip.ipv4_mapped or ip.sixtofour) is not None:
            ip = inner
    return ip.is_global and not ip.is_multicast


class PrivateAddress(MusicError):
    """A host that resolves to an address the policy refuses."""

    def __init__(self) -> None:
        super().__init__("That link points to a private or local network address; I won't open it.")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which hosts media may come from: public addresses, and what the operator allows.

    Host names are resolved here, by :meth:`addresses`; the egress proxy connects
    to exactly the addresses it returned, so a name cannot resolve to a public
    address when checked and a private one when fetched.
    """

    allow_private: bool = False
    """Every address is allowed (``MUSIC_ALLOW_PRIVATE_URLS``)."""
    allowed_hosts: frozenset[str] = frozenset()
    """Host names allowed whatever they resolve to (``MUSIC_ALLOWED_HOSTS``), lower case."""
    time_limit: float = 10.0
    """Seconds a name lookup may take."""

    def allows(self, host: str, address: str) -> bool:
        return (
            self.allow_private
            or host.lower().rstrip(".") in self.allowed_hosts
            or is_public(address)
        )

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``; PrivateAddress unless every one of them is allowed."""
        found = await _addresses(host, port, self.time_limit)
        if not all(self.allows(host, address) for address in found):
            raise PrivateAddress()
        return found

    async def check(self, url: str) -> None:
        """Raise MusicError unless ``url`` is http(s) and its host is allowed."""
        parts = urlsplit(normalise_url(url))
        if not self.allow_private:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            await self.addresses(parts.hostname or "", port)


async def _addresses(host: str, port: int, time_limit: float) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(time_limit):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as error:  # UnicodeError: `a..b`
        # The name stays in the log: shown to users it would tell which internal names exist.
        log.info("could not look up %r: %s", host, error)
        raise MusicError("I couldn't find the server of that link.") from error
    return [str(info[4][0]) for info in infos]
