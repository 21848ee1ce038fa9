"""Local media for the music tests: FFmpeg-made tones over HTTP, playlist pages, broken links.

:func:`make_tone` writes a sine tone as WAV (the bot re-encodes it), Ogg/Opus
or WebM/Opus (the bot passes the Opus through).  :class:`FakeMediaServer`
serves a directory on 127.0.0.1:

- ``/media/<name>``: the file, with HTTP range support (FFmpeg seeks with it);
- ``/page?files=a.wav,b.ogg&title=T``: an HTML page with one ``<audio>`` per file (or
  path or URL), which yt-dlp's generic extractor reads as a playlist;
- a file passed to :meth:`FakeMediaServer.break_file` answers 404 from then on
  (a link that dies between ``/play`` and its turn);
- ``/redirect?to=URL``: a 302 to any URL (:meth:`FakeMediaServer.redirect_url`);
- ``/cloak/<name>?to=URL``: the file for yt-dlp, a 302 to URL for FFmpeg and ffprobe
  (which send ``Icy-MetaData``), as a site would that hides where it leads;
- ``/endless?drip=S``: a page that never ends, as fast as it is read or one byte every
  ``S`` seconds (:meth:`FakeMediaServer.endless_url`);
- ``/packed/<name>?size=N``: a page with an ``<audio>`` of the file after N bytes of
  padding, sent gzip-compressed whatever was asked (:meth:`FakeMediaServer.packed_url`);
- ``/fresh/<name>``: a 302 to a new link of the file each time (``?token=N``), as a
  site hands out stream links that expire; :meth:`FakeMediaServer.expire_links` makes
  every link handed out so far answer 403 (:meth:`FakeMediaServer.fresh_url`).

:attr:`FakeMediaServer.requests` records every path asked for, so a test can
show that a server was never reached.

:class:`LocalSearchIE` is a yt-dlp search (``localsearch1:words``) over a table of
words → URLs, standing in for ``ytsearch`` (which needs YouTube) in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import html
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import yt_dlp.globals
from aiohttp import web
from yt_dlp.extractor import import_extractors
from yt_dlp.extractor.common import SearchInfoExtractor
from yt_dlp.utils import ExtractorError

from tests.fakes.local_http import LocalHTTPServer

CODECS = {
    "wav": ["-c:a", "pcm_s16le"],
    "ogg": ["-c:a", "libopus", "-b:a", "96k"],
    "webm": ["-c:a", "libopus", "-b:a", "96k"],
}


def make_tone(directory: Path, frequency: int, seconds: float, kind: str = "wav") -> str:
    """Write (once) a stereo 48 kHz sine tone; returns its file name."""
    name = f"tone-{frequency}hz-{seconds:g}s.{kind}"
    path = directory / name
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                "-i", f"sine=frequency={frequency}:duration={seconds}",
                "-ac", "2", "-ar", "48000", *CODECS[kind], str(path),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
    return name


class FakeMediaServer(LocalHTTPServer):
    """Serves a directory of media files (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.broken: set[str] = set()
        self.requests: list[str] = []
        self.held: set[str] = set()
        """Files whose requests wait until :attr:`release` is set (a slow source)."""
        self.release = asyncio.Event()
        self.tokens = 0
        """Links handed out by ``/fresh/``; those up to :attr:`expired` answer 403."""
        self.expired = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/media/{name}", self._media)
        app.router.add_get("/page", self._page)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/cloak/{name}", self._cloak)
        app.router.add_get("/endless", self._endless)
        app.router.add_get("/packed/{name}", self._packed)
        app.router.add_get("/fresh/{name}", self._fresh)

    def tone(self, frequency: int, seconds: float, kind: str = "wav") -> str:
        """The URL of a tone (generated on first use; blocking)."""
        return self.url(make_tone(self.directory, frequency, seconds, kind))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/media/{quote(name)}"

    def page_url(self, *names: str, title: str = "Test playlist", host: str = "127.0.0.1") -> str:
        """A page with one ``<audio>`` per file name (or absolute path, such as a redirect,
        or URL)."""
        files = ",".join(quote(name, safe="") for name in names)
        return f"http://{host}:{self.port}/page?title={quote(title)}&files={files}"

    def redirect_url(self, target: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.redirect_path(target)}"

    def cloaked_url(self, name: str, target: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/cloak/{quote(name)}?to={quote(target, safe='')}"

    def endless_url(self, drip: float = 0.0) -> str:
        return f"http://127.0.0.1:{self.port}/endless?drip={drip:g}"

    def packed_url(self, name: str, size: int) -> str:
        return f"http://127.0.0.1:{self.port}/packed/{quote(name)}?size={size}"

    def fresh_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/fresh/{quote(name)}"

    def expire_links(self) -> None:
        """Every link ``/fresh/`` handed out so far answers 403 from now on."""
        self.expired = self.tokens

    @staticmethod
    def redirect_path(target: str) -> str:
        return f"/redirect?to={quote(target, safe='')}"

    def break_file(self, url_or_name: str) -> None:
        self.broken.add(url_or_name.rsplit("/", 1)[-1])

    def write(self, name: str, data: bytes) -> str:
        """Serve arbitrary bytes (e.g. something that is not media); returns the URL."""
        (self.directory / name).write_bytes(data)
        return self.url(name)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        if name in self.held:
            await self.release.wait()
        path = self.directory / name
        if 0 < int(request.query.get("token", "0")) <= self.expired:
            raise web.HTTPForbidden()
        if name in self.broken or "/" in name or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        title = html.escape(request.query.get("title", "Playlist"))
        names = [name for name in request.query.get("files", "").split(",") if name]
        self.requests.append(request.path_qs)
        sources = [
            name if name.startswith("/") or "://" in name else f"/media/{quote(name)}"
            for name in names
        ]
        audio = "".join(f'<audio src="{html.escape(src)}"></audio>' for src in sources)
        body = f"<html><head><title>{title}</title></head><body>{audio}</body></html>"
        return web.Response(text=body, content_type="text/html")

    async def _cloak(self, request: web.Request) -> web.StreamResponse:
        if "Icy-MetaData" in request.headers:  # FFmpeg asks for it, yt-dlp doesn't
            self.requests.append(request.path_qs)
            raise web.HTTPFound(request.query["to"])
        return await self._media(request)

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        drip = float(request.query.get("drip", "0"))
        chunk = b"a" if drip else b"<p>" + b"a" * 65536 + b"</p>"
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # until the reader hangs up
            await response.write(b"<html><head><title>Endless</title></head><body>")
            while True:
                await response.write(chunk)
                await asyncio.sleep(drip)
        return response

    async def _packed(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        src = html.escape(f"/media/{quote(request.match_info['name'])}")
        padding = b"a" * int(request.query["size"])
        page = b"<html><head><title>Packed</title></head><body><!--" + padding + b"-->"
        page += f'<audio src="{src}"></audio></body></html>'.encode()
        headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        return web.Response(body=gzip.compress(page), headers=headers)

    async def _fresh(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        self.tokens += 1
        raise web.HTTPFound(f"/media/{quote(request.match_info['name'])}?token={self.tokens}")

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        raise web.HTTPFound(request.query["to"])


class LocalSearchIE(SearchInfoExtractor):
    """``localsearch1:words``: the first entry of :attr:`results` whose key is in the words."""

    IE_NAME = "localsearch"
    _SEARCH_KEY = "localsearch"
    results: ClassVar[dict[str, tuple[str, str]]] = {}
    """Lower-case words → (title, URL)."""
    searches: ClassVar[list[str]] = []
    refusal: ClassVar[str | None] = None
    """Set: every search fails with this message, as YouTube's sign-in wall does."""
    seen: ClassVar[list[dict[str, Any]]] = []
    """Per search: the YoutubeDL's extractor args and the ``SID`` cookie it holds for
    youtube.com (from its cookies file)."""

    def _search_results(self, query: str) -> Iterator[dict[str, Any]]:
        self.searches.append(query)
        cookie = self._get_cookies("https://www.youtube.com/").get("SID")
        self.seen.append(
            {
                "extractor_args": self._downloader.params.get("extractor_args"),  # type: ignore[union-attr]
                "sid": cookie.value if cookie else None,
            }
        )
        if self.refusal is not None:
            raise ExtractorError(self.refusal, expected=True)
        for words, (title, url) in self.results.items():
            if words in query.lower():
                yield self.url_result(url, video_title=title)


def register_local_search() -> Callable[[], None]:
    """Put :class:`LocalSearchIE` first among yt-dlp's extractors; returns the undo."""
    import_extractors()
    context = yt_dlp.globals.extractors
    old = context.value
    context.value = {"LocalSearchIE": LocalSearchIE, **old}
    LocalSearchIE.results, LocalSearchIE.searches, LocalSearchIE.seen = {}, [], []
    LocalSearchIE.refusal = None

    def undo() -> None:
        context.value = old

    return undo
