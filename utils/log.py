"""Logging set-up: text or JSON lines to stderr and a rotating file, secrets redacted.

Also owns the request context: while the bot answers one message or command, every
log line carries that request's guild, channel, user and a short request id
(a `ContextVar`, so tasks started for the request inherit it).
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import re
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from utils.text import well_formed

REDACTED = "[redacted]"

# Tokens discord.py logs at DEBUG: webhook and interaction URLs carry one in their path
# (a webhook's lasts until it is deleted and lets anyone post as it), and gateway events
# and voice frames as a "token" field. JSON lines escape the quotes with a backslash.
_DISCORD_TOKENS = re.compile(
    r"""(/(?:webhooks|interactions)/\d+/)[\w.-]{20,}|(\\?["']token\\?["']:\s*\\?["'])[^"'\\]+"""
)

# Credentials in HTTP headers that libraries log at DEBUG: spotipy logs its token request
# with `Authorization: Basic` + base64 of the client id and secret (no longer the secret's
# own spelling) and every API call with its `Bearer` access token.
_AUTHORIZATION = re.compile(
    r"""(authorization\\?["']?\s*[:=]\s*\\?["']?(?:(?:basic|bearer|bot)\s+)?)[^\s"'\\,}]+""",
    re.IGNORECASE,
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class Request:
    """One message or command being answered: where, who, when it arrived, and its id."""

    guild_id: int | None
    channel_id: int | None
    user_id: int | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.monotonic)


_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar("request", default=None)


def start_request(*, guild_id: int | None, channel_id: int | None, user_id: int | None) -> Request:
    """Make a new request the current one in this context (and the tasks it starts)."""
    request = Request(guild_id, channel_id, user_id)
    _request.set(request)
    return request


def current_request() -> Request | None:
    return _request.get()


class _RequestFilter(logging.Filter):
    """Puts the current request's fields on each record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _request.get()
        if request is not None:
            fields = {
                "request_id": request.id,
                "guild_id": request.guild_id,
                "channel_id": request.channel_id,
                "user_id": request.user_id,
            }
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class _RedactingFormatter(logging.Formatter):
    """Formats a record, then blanks out every known secret wherever it appears."""

    def __init__(self, fmt: str | None, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        # Also as JSON spells them: JSON lines escape a quote or a backslash in a password.
        spellings = {
            spelling
            for secret in secrets
            if len(secret) >= 4
            for spelling in (secret, json.dumps(secret, ensure_ascii=False)[1:-1])
        }
        self._secrets = sorted(spellings, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _AUTHORIZATION.sub(lambda m: m[1] + REDACTED, text)
        return _DISCORD_TOKENS.sub(lambda m: (m[1] or m[2]) + REDACTED, text)

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        return well_formed(self.redact(super().format(record)))


class _JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, logger, message, the request's fields,
    `extra=` fields, and the exception and stack if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return well_formed(self.redact(json.dumps(entry, ensure_ascii=False, default=str)))


def setup_logging(
    *, level: str, fmt: str, log_dir: Path | None, secrets: Iterable[str] = ()
) -> None:
    """Configure the root logger (discord.py's loggers propagate to it)."""
    secrets = list(secrets)
    if fmt == "json":
        formatter: logging.Formatter = _JsonFormatter(None, secrets)
    else:
        formatter = _RedactingFormatter(
            "%(asctime)s %(levelname)-8s %(name)s:%(request_tag)s %(message)s", secrets
        )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "bot.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_RequestFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # discord.http logs every request at DEBUG; keep it one notch quieter than ours.
    logging.getLogger("discord.http").setLevel(max(logging.getLevelName(level), logging.INFO))
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """A crash's traceback goes where every other line goes: redacted, into the log file,
    one JSON object with LOG_FORMAT=json (Python would print it raw on stderr only)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("bot").critical(
        "stopped by an unexpected error", exc_info=(kind, error, trace)
    )
