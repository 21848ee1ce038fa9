"""Logging set-up: text or JSON lines to stderr and a rotating file, secrets redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

REDACTED = "[redacted]"


class _RedactingFormatter(logging.Formatter):
    """Formats a record, then blanks out every known secret wherever it appears."""

    def __init__(self, fmt: str | None, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class _JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False))


def setup_logging(
    *, level: str, fmt: str, log_dir: Path | None, secrets: Iterable[str] = ()
) -> None:
    """Configure the root logger (discord.py's loggers propagate to it)."""
    secrets = list(secrets)
    if fmt == "json":
        formatter: logging.Formatter = _JsonFormatter(None, secrets)
    else:
        formatter = _RedactingFormatter(
            "%(asctime)s %(levelname)-8s %(name)s: %(message)s", secrets
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
        root.addHandler(handler)
    root.setLevel(level)
    # discord.http logs every request at DEBUG; keep it one notch quieter than ours.
    logging.getLogger("discord.http").setLevel(max(logging.getLevelName(level), logging.INFO))
