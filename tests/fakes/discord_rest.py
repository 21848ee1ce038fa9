"""The REST plumbing the fake Discord's route modules share: errors, bodies, replies."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord_models import Json, UploadedFile

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by handlers; answered as Discord's JSON error body."""

    def __init__(self, status: int, message: str, code: int) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def missing_permissions() -> ApiError:
    return ApiError(403, "Missing Permissions", 50013)


def invalid_form_body() -> ApiError:
    return ApiError(400, "Invalid Form Body", 50035)


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": with "; charset=utf-8" discord.py reads the body as text.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def no_content() -> web.Response:
    return web.Response(status=204)


RATE_LIMIT = 1000  # requests a bucket allows per second: tests are never held back


def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The rate-limit headers Discord puts on every API answer (unless the handler wrote
    its own, as a 429 does): one bucket per route, far from empty. discord.py keeps its
    buckets by them; without them it assumes one request at a time, and a request
    cancelled in its bookkeeping would stall the next one on that route for 30 s."""
    if "X-RateLimit-Limit" in response.headers or "Retry-After" in response.headers:
        return
    route = request.match_info.route.resource
    name = f"{request.method} {route.canonical if route else request.path}"
    response.headers.update(
        {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": hashlib.sha1(name.encode()).hexdigest()[:32],
        }
    )


def bot_token(request: web.Request) -> str | None:
    """The bot token of a request (``Authorization: Bot …``), if it carries one."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bot ") if header.startswith("Bot ") else None


def path_id(request: web.Request, key: str) -> int:
    return int(request.match_info[key])


@dataclass
class Body:
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def payload(self) -> Json:
        return self.json if isinstance(self.json, dict) else {}

    @classmethod
    async def read(cls, request: web.Request) -> Body:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            files = [
                UploadedFile(value.filename, value.file.read(), value.content_type)
                for value in form.values()
                if isinstance(value, web.FileField)
            ]
            payload_json = form.get("payload_json")
            return cls(
                json.loads(payload_json) if isinstance(payload_json, str | bytes) else None, files
            )
        raw = await request.read()
        return cls(json.loads(raw) if raw else None)


BODY = web.RequestKey("body", Body)


def request_body(request: web.Request) -> Body:
    return request[BODY]
