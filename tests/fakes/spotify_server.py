"""A fake Spotify: the accounts token endpoint and the Web API paths spotipy calls.

- ``POST /api/token``: client credentials (HTTP Basic, checked) → a bearer token;
  wrong credentials get 400 ``invalid_client`` like the real accounts service.
- ``GET /v1/tracks/{id}``, ``/v1/albums/{id}`` (first page of tracks inside),
  ``/v1/albums/{id}/tracks``, ``/v1/playlists/{id}``, ``/v1/playlists/{id}/items``:
  paged with ``limit``/``offset`` and absolute ``next`` links.
- Unknown ids, and playlists made by Spotify (editorial, algorithmic), answer 404
  as the real Web API has done for apps since November 2024.
- :attr:`FakeSpotify.retry_after` set: the Web API answers 429 with that
  ``Retry-After``, as Spotify does to an app over its rate limit (often for hours).
- :attr:`FakeSpotify.api_down`: the Web API answers 502 with an HTML page (an outage).
- :attr:`FakeSpotify.delay`: seconds each Web API answer waits (a slow Spotify).
- :attr:`FakeSpotify.token_status` set: the token endpoint fails with that status and
  an HTML page, as a service that is down does.

Point spotipy here with :meth:`FakeSpotify.patch_spotipy` (tests only).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from typing import Any

import spotipy
from aiohttp import web

from tests.fakes.local_http import LocalHTTPServer

Json = dict[str, Any]


class FakeSpotify(LocalHTTPServer):
    def __init__(
        self,
        *,
        client_id: str = "spotify-test-id",
        client_secret: str = "spotify-test-secret",
        page_size: int = 50,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        self.tracks: dict[str, Json] = {}
        self.albums: dict[str, Json] = {}
        self.playlists: dict[str, Json] = {}
        self.requests: list[str] = []
        self.retry_after: int | None = None
        self.api_down = False
        self.delay = 0.0
        self.token_status: int | None = None
        self._tokens: set[str] = set()

    # Lifecycle --------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/token", self._token)
        app.router.add_get("/v1/tracks/{id}", self._track)
        app.router.add_get("/v1/albums/{id}", self._album)
        app.router.add_get("/v1/albums/{id}/tracks", self._album_tracks)
        app.router.add_get("/v1/playlists/{id}", self._playlist)
        app.router.add_get("/v1/playlists/{id}/items", self._playlist_items)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def patch_spotipy(self) -> Callable[[], None]:
        """Send spotipy's token and API requests here; returns the undo."""
        credentials, client = spotipy.SpotifyClientCredentials, spotipy.Spotify
        old_token_url, old_init = credentials.OAUTH_TOKEN_URL, client.__init__
        prefix = f"{self.url}/v1/"

        def init(instance: spotipy.Spotify, *args: Any, **kwargs: Any) -> None:
            old_init(instance, *args, **kwargs)
            instance.prefix = prefix

        credentials.OAUTH_TOKEN_URL = f"{self.url}/api/token"
        client.__init__ = init  # type: ignore[method-assign]

        def undo() -> None:
            credentials.OAUTH_TOKEN_URL = old_token_url
            client.__init__ = old_init  # type: ignore[method-assign]

        return undo

    # Building the catalogue ---------------------------------------------------

    def add_track(self, track_id: str, artist: str, name: str, *, duration_ms: int = 3000) -> Json:
        track = {
            "id": track_id,
            "type": "track",
            "name": name,
            "artists": [{"name": artist, "type": "artist"}],
            "duration_ms": duration_ms,
            "is_local": False,
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
        }
        self.tracks[track_id] = track
        return track

    def add_album(self, album_id: str, name: str, tracks: list[Json]) -> None:
        self.albums[album_id] = {"id": album_id, "name": name, "tracks": tracks}

    def add_playlist(
        self, playlist_id: str, name: str, tracks: list[Json], *, by_spotify: bool = False
    ) -> None:
        self.playlists[playlist_id] = {
            "id": playlist_id,
            "name": name,
            "tracks": tracks,
            "by_spotify": by_spotify,
        }

    # Handlers ---------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.requests.append("token")
        if self.token_status is not None:
            return web.Response(
                status=self.token_status, text="<html>Unavailable</html>", content_type="text/html"
            )
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client"}, status=400
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_hex(16)
        self._tokens.add(token)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )

    async def _authorised(self, request: web.Request) -> None:
        self.requests.append(request.path_qs)
        await asyncio.sleep(self.delay)
        header = request.headers.get("Authorization", "")
        if header.removeprefix("Bearer ") not in self._tokens:
            raise _error(401, "Invalid access token")
        if self.api_down:
            raise web.HTTPBadGateway(text="<html>Bad gateway</html>", content_type="text/html")
        if self.retry_after is not None:
            raise web.HTTPTooManyRequests(
                headers={"Retry-After": str(self.retry_after)},
                text='{"error": {"status": 429, "message": "API rate limit exceeded"}}',
                content_type="application/json",
            )

    async def _track(self, request: web.Request) -> web.StreamResponse:
        await self._authorised(request)
        track = self.tracks.get(request.match_info["id"])
        if track is None:
            raise _error(404, "Resource not found")
        return web.json_response(track)

    async def _album(self, request: web.Request) -> web.StreamResponse:
        await self._authorised(request)
        album = self._find(self.albums, request)
        path = f"/v1/albums/{album['id']}/tracks"
        first = self._page(album["tracks"], path, 0, self.page_size, wrap=None)
        return web.json_response({"id": album["id"], "name": album["name"], "tracks": first})

    async def _album_tracks(self, request: web.Request) -> web.StreamResponse:
        await self._authorised(request)
        album = self._find(self.albums, request)
        offset, limit = _paging(request, self.page_size)
        page = self._page(album["tracks"], request.path, offset, limit, wrap=None)
        return web.json_response(page)

    async def _playlist(self, request: web.Request) -> web.StreamResponse:
        await self._authorised(request)
        playlist = self._find_playlist(request)
        return web.json_response({"id": playlist["id"], "name": playlist["name"]})

    async def _playlist_items(self, request: web.Request) -> web.StreamResponse:
        await self._authorised(request)
        playlist = self._find_playlist(request)
        offset, limit = _paging(request, self.page_size)
        page = self._page(playlist["tracks"], request.path, offset, limit, wrap="item")
        return web.json_response(page)

    def _find(self, table: dict[str, Json], request: web.Request) -> Json:
        found = table.get(request.match_info["id"])
        if found is None:
            raise _error(404, "Resource not found")
        return found

    def _find_playlist(self, request: web.Request) -> Json:
        playlist = self._find(self.playlists, request)
        if playlist["by_spotify"]:
            raise _error(404, "Resource not found")
        return playlist

    def _page(
        self, items: list[Json], path: str, offset: int, limit: int, *, wrap: str | None
    ) -> Json:
        limit = min(limit, self.page_size)
        chunk = items[offset : offset + limit]
        end = offset + len(chunk)
        return {
            "href": f"{self.url}{path}?offset={offset}&limit={limit}",
            "items": [{wrap: item, "is_local": False} if wrap else item for item in chunk],
            "limit": limit,
            "offset": offset,
            "total": len(items),
            "next": f"{self.url}{path}?offset={end}&limit={limit}" if end < len(items) else None,
            "previous": None,
        }


def _paging(request: web.Request, default: int) -> tuple[int, int]:
    return int(request.query.get("offset", 0)), int(request.query.get("limit", default))


def _error(status: int, message: str) -> web.HTTPException:
    cls = web.HTTPNotFound if status == 404 else web.HTTPUnauthorized
    return cls(
        text=f'{{"error": {{"status": {status}, "message": "{message}"}}}}',
        content_type="application/json",
    )
