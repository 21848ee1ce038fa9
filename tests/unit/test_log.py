"""Log set-up: formats, the rotating file, discord.py's logs, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from utils.log import REDACTED, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_to_file_with_secrets_redacted(tmp_path: Path) -> None:
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path, secrets=["tok-SECRET-123"])
    logging.getLogger("discord.gateway").info("connecting with tok-SECRET-123")
    try:
        raise RuntimeError("boom tok-SECRET-123")
    except RuntimeError:
        logging.getLogger("bot").exception("failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    assert "tok-SECRET-123" not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries[0]["logger"] == "discord.gateway"
    assert entries[0]["message"] == f"connecting with {REDACTED}"
    assert entries[1]["level"] == "ERROR"
    assert "RuntimeError" in entries[1]["exception"]


def test_text_format_and_level(tmp_path: Path) -> None:
    setup_logging(level="WARNING", fmt="text", log_dir=tmp_path)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown %d", 5)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    assert "hidden" not in text
    assert "WARNING  x: shown 5" in text
