"""Character avatars: fetched safely, re-encoded as small PNGs.

Links are fetched only over https, never with a user name or password in them (the
log would keep them), and only from hosts the music links'
:class:`~cogs.music.urls.AddressPolicy` allows (public addresses unless the operator
allows more), every redirect hop included: hops are followed here one by one, each
checked, and the connection goes to the addresses the policy returned (a resolver
that asks the policy), so a name cannot pass the check and then point inward.
Downloads stop at :data:`MAX_DOWNLOAD` while streaming. Every image, attachment or
link, is decoded by Pillow in a thread and stored as a PNG of at most
:data:`MAX_SIDE` pixels a side, so what is kept is small, valid and independent of
where it came from.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import ssl
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from PIL import ExifTags, Image, UnidentifiedImageError

from cogs.music.urls import AddressPolicy
from cogs.roleplay.errors import RoleplayError
from utils.images import MAX_PIXELS, open_image

log = logging.getLogger(__name__)

MAX_DOWNLOAD = 8 * 1024 * 1024
"""Bytes of one image (a link or an attachment) before it is refused."""
MAX_SIDE = 256
"""Pixels a side of a stored avatar: its PNG is at most about 260 KB."""
MAX_REDIRECTS = 5
FETCH_TIMEOUT = 15.0
_REDIRECTS = {301, 302, 303, 307, 308}
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
_INVALID_LINK = "That is not a valid avatar link."
_TURNS = {  # EXIF Orientation -> what shows the photo upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def to_avatar(data: bytes) -> bytes:
    """``data`` (PNG, JPEG, GIF, WebP) as a PNG of at most MAX_SIDE a side.

    CPU work: call it in a thread. RoleplayError when it is not such an image.
    """
    try:
        with open_image(data, tuple(sorted(_FORMATS))) as image:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            upright = _eight_bit(_turned_upright(image))
            small = upright.convert("RGBA" if _has_alpha(upright) else "RGB")
    except Image.DecompressionBombError:
        raise RoleplayError(f"That image is too large (over {MAX_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise RoleplayError("That is not an image I can use (PNG, JPEG, GIF or WebP).") from None
    except (OSError, ValueError, SyntaxError):  # truncated or corrupt image data
        raise RoleplayError("That image is damaged.") from None
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _turned_upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF Orientation says: cameras store a photo as taken and
    say how to turn it. (``ImageOps.exif_transpose`` also rewrites the EXIF, and fails
    on a corrupt one; only the pixels are kept here.)"""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    turn = _TURNS.get(orientation) if isinstance(orientation, int) else None
    return image if turn is None else image.transpose(turn)


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey PNG (mode ``I;16``) as 8-bit grey: converted as it is, every shade
    past 255 of 65,535 would be white."""
    if image.mode.startswith("I"):
        return image.point(lambda value: value / 257).convert("L")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def looks_like_image(data: bytes) -> bool:
    return data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


class _PolicyResolver(AbstractResolver):
    """Name lookups through the policy: only addresses it allows are connected to."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await self.policy.addresses(host, port)
        ]

    async def close(self) -> None:
        return None


class AvatarFetcher:
    """Downloads avatar images from links (see the module docstring); ``start`` first."""

    def __init__(self, policy: AddressPolicy, *, tls: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._tls = tls if tls is not None else ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=_PolicyResolver(self.policy), ssl=self._tls, limit=20
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT),
            # Bodies are read as sent, so none is asked for compressed (aiohttp asks for
            # gzip by default): a server that compresses images would send no image.
            headers={"Accept-Encoding": "identity"},
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> bytes:
        """The avatar at ``url`` as a PNG (see :func:`to_avatar`); RoleplayError if refused."""
        data = await self._download(url)
        return await asyncio.to_thread(to_avatar, data)

    async def _download(self, url: str) -> bytes:
        if self._session is None:
            raise RuntimeError("the avatar fetcher is not started")
        try:
            # All hops together: each request's own limit would let a chain of slow
            # redirects keep the person waiting for minutes.
            async with asyncio.timeout(FETCH_TIMEOUT):
                return await self._follow(self._session, url)
        except TimeoutError:
            log.info("avatar download of %s took too long", url)
            raise RoleplayError("That image took too long to download.") from None

    async def _follow(self, session: aiohttp.ClientSession, url: str) -> bytes:
        """The image at ``url``, its redirects followed hop by hop, each checked."""
        location = ""
        for _ in range(MAX_REDIRECTS + 1):
            url = _https_link(url, location)
            await self.policy.check(url)  # aiohttp skips the resolver for IP literals
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        location = response.headers["Location"]
                        continue
                    if response.status != 200:
                        raise RoleplayError(
                            f"I couldn't download that image (HTTP {response.status})."
                        )
                    return await _read_image(response)
            except (aiohttp.ClientError, TimeoutError) as error:
                log.info("avatar download of %s failed: %r", url, error)
                raise RoleplayError("I couldn't download that image.") from error
        raise RoleplayError("That link redirects too many times.")


def _https_link(url: str, location: str) -> str:
    """``location`` (a redirect, or "") resolved against ``url``; RoleplayError unless
    https, or if it holds credentials (``https://user:token@host/``)."""
    try:
        link = urljoin(url, location)
        parts = urlsplit(link)
        _ = parts.port  # ValueError unless it is a number from 0 to 65535
    except ValueError:
        raise RoleplayError(_INVALID_LINK) from None
    if parts.scheme.lower() != "https":
        raise RoleplayError("Avatar links must start with https://.")
    if not parts.hostname:
        raise RoleplayError(_INVALID_LINK)
    if parts.username is not None or parts.password is not None:  # would reach the log
        raise RoleplayError("Avatar links can't hold a user name or password.")
    return link


async def _read_image(response: aiohttp.ClientResponse) -> bytes:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise RoleplayError("That link is not an image.")
    if response.content_length is not None and response.content_length > MAX_DOWNLOAD:
        raise RoleplayError(_too_big())
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_DOWNLOAD:
            raise RoleplayError(_too_big())
    if not looks_like_image(bytes(data[:16])):
        raise RoleplayError("That link is not an image.")
    return bytes(data)


def _too_big() -> str:
    return f"That image is over {MAX_DOWNLOAD // (1024 * 1024)} MB."
