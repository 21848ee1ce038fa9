"""Log set-up: formats, the rotating file, secrets redacted, request context and extras."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import spotipy

from cogs.ai.dispatch import ChannelDispatcher
from tests.fakes.spotify_server import FakeSpotify
from utils.log import REDACTED, current_request, setup_logging, start_request


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, excepthook = root.handlers[:], root.level, sys.excepthook
    yield
    sys.excepthook = excepthook
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


def test_json_lines_redact_a_secret_holding_quotes_and_backslashes(tmp_path: Path) -> None:
    url = 'postgresql://gembot:pa"ss\\word@db/gembot'
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path, secrets=[url])
    try:
        raise ConnectionError(f"cannot connect to {url}")
    except ConnectionError:
        logging.getLogger("bot").exception("database %s is down", url)
    [entry] = _json_lines(tmp_path)
    assert entry["message"] == f"database {REDACTED} is down"
    exception = str(entry["exception"])
    assert url not in exception
    assert f"cannot connect to {REDACTED}" in exception


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_discord_tokens_in_debug_lines_are_redacted(tmp_path: Path, fmt: str) -> None:
    """With LOG_LEVEL=DEBUG discord.py logs webhook and interaction URLs (their token in
    the path), gateway events and voice frames (a "token" field): none reach the log."""
    webhook = "Kx9_-aQ2" * 9
    interaction = "aW50ZXJhY3Rpb246" * 5
    setup_logging(level="DEBUG", fmt=fmt, log_dir=tmp_path)
    logging.getLogger("discord.webhook.async_").debug(
        "Webhook ID %s with %s %s has returned status code %s",
        123,
        "POST",
        f"https://discord.com/api/v10/webhooks/123/{webhook}?wait=1",
        200,
    )
    logging.getLogger("discord.webhook.async_").debug(
        "Webhook ID %s with %s %s has returned status code %s",
        9,
        "POST",
        f"https://discord.com/api/v10/interactions/9/{interaction}/callback",
        204,
    )
    event = {"t": "INTERACTION_CREATE", "d": {"id": "9", "token": interaction, "type": 2}}
    logging.getLogger("discord.gateway").debug("For Shard ID %s: WebSocket Event: %s", 0, event)
    frame = {"op": 0, "d": {"server_id": "1", "session_id": "s", "token": "9f2c4e1a7b3d"}}
    logging.getLogger("discord.gateway").debug("Sending voice websocket frame: %s.", frame)
    logging.getLogger("x").debug("tokens used: %s", {"tokens": 12})
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    for token in (webhook, interaction, "9f2c4e1a7b3d"):
        assert token not in text
    assert f"/webhooks/123/{REDACTED}?wait=1" in text
    assert f"/interactions/9/{REDACTED}/callback" in text
    assert text.count(REDACTED) == 4
    assert "'tokens': 12" in text  # other fields are left alone


def test_a_crash_is_logged_as_json_into_the_file_with_secrets_redacted(tmp_path: Path) -> None:
    """Python prints an uncaught exception raw on stderr: not in bot.log, not JSON, and
    with whatever its message quotes."""
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path, secrets=["tok-SECRET-123"])
    try:
        raise RuntimeError("login with tok-SECRET-123 failed")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())  # what the interpreter calls as the process ends
    [entry] = _json_lines(tmp_path)
    assert entry["level"] == "CRITICAL"
    assert entry["message"] == "stopped by an unexpected error"
    assert f"RuntimeError: login with {REDACTED} failed" in str(entry["exception"])


def test_text_format_and_level(tmp_path: Path) -> None:
    setup_logging(level="WARNING", fmt="text", log_dir=tmp_path)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown %d", 5)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    assert "hidden" not in text
    assert "WARNING  x: shown 5" in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_line_quoting_half_a_surrogate_pair_still_reaches_the_file(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text from Discord's JSON can hold a lone surrogate ("\\ud83d"), which UTF-8 cannot
    encode: the line is written with U+FFFD in its place, not lost with a traceback on
    stderr (and in JSON not as an escape that strict parsers refuse)."""
    setup_logging(level="INFO", fmt=fmt, log_dir=tmp_path)
    logging.getLogger("x").warning("unknown command: %s", "play \ud83d")
    logging.getLogger("x").warning("the next line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = (tmp_path / "bot.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "the next line" in lines[1]
    assert "unknown command: play \ufffd" in lines[0]
    assert "Logging error" not in capsys.readouterr().err


def test_json_lines_keep_the_stack_a_warning_asked_for(tmp_path: Path) -> None:
    """aiohttp warns of a possible endless loop with stack_info=True: the stack says where."""
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path)

    def reader_in_a_loop() -> None:
        logging.getLogger("aiohttp.internal").warning("might be infinite loop.", stack_info=True)

    reader_in_a_loop()
    [entry] = _json_lines(tmp_path)
    assert "in reader_in_a_loop" in str(entry["stack"])


def _json_lines(log_dir: Path) -> list[dict[str, object]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in (log_dir / "bot.log").read_text().splitlines()]


async def test_json_lines_carry_the_request_and_extra_fields(tmp_path: Path) -> None:
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path, secrets=["tok-SECRET-123"])
    log = logging.getLogger("bot")
    log.info("before any request")

    async def answer() -> str:
        request = start_request(guild_id=1, channel_id=2, user_id=3)
        await asyncio.sleep(0)
        log.info("answering", extra={"outcome": "ok", "token": "tok-SECRET-123"})
        # a task started while answering inherits the request
        await asyncio.create_task(asyncio.to_thread(log.warning, "in a thread"))
        return request.id

    request_id = await asyncio.create_task(answer())
    log.info("after", extra={"channel_id": 99})
    first, answering, in_thread, after = _json_lines(tmp_path)
    assert "request_id" not in first and "guild_id" not in first
    assert answering["message"] == "answering"
    assert answering["outcome"] == "ok"
    assert answering["token"] == REDACTED
    for entry in (answering, in_thread):
        assert entry["request_id"] == request_id
        assert (entry["guild_id"], entry["channel_id"], entry["user_id"]) == (1, 2, 3)
    assert "request_id" not in after, "the request ended with its task"
    assert after["channel_id"] == 99


async def test_text_lines_show_the_request_id(tmp_path: Path) -> None:
    setup_logging(level="INFO", fmt="text", log_dir=tmp_path, secrets=["tok-SECRET-123"])

    async def answer() -> str:
        request = start_request(guild_id=None, channel_id=2, user_id=3)
        logging.getLogger("x").info("key tok-SECRET-123")
        return request.id

    request_id = await asyncio.create_task(answer())
    logging.getLogger("x").info("outside")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    assert f"INFO     x: [{request_id}] key {REDACTED}" in text
    assert "INFO     x: outside" in text


async def test_dispatched_jobs_run_with_the_request_that_submitted_them(tmp_path: Path) -> None:
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path)
    dispatcher = ChannelDispatcher(max_concurrency=1, queue_size=5)
    release = asyncio.Event()
    seen: list[tuple[str, str | None]] = []

    def job(name: str, *, fail: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await release.wait()
            request = current_request()
            seen.append((name, request.id if request else None))
            if fail:
                raise RuntimeError("bug")

        return run

    async def submit(name: str, user_id: int, *, fail: bool = False) -> str:
        request = start_request(guild_id=1, channel_id=2, user_id=user_id)
        assert dispatcher.submit("channel", job(name, fail=fail))
        return request.id

    # All three queue behind one worker, which the first submission started.
    ids = {
        name: await asyncio.create_task(submit(name, user, fail=name == "b"))
        for name, user in (("a", 10), ("b", 11), ("c", 12))
    }
    release.set()
    drained = asyncio.Event()

    async def last() -> None:  # runs after every job before it in this channel
        drained.set()

    assert dispatcher.submit("channel", last)
    await drained.wait()
    assert seen == [(name, ids[name]) for name in "abc"]
    [failure] = [e for e in _json_lines(tmp_path) if e["message"].startswith("AI job")]
    assert failure["request_id"] == ids["b"] and failure["user_id"] == 11


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_spotify_credentials_in_debug_lines_are_redacted(
    tmp_path: Path, fmt: str, spotify_fake: FakeSpotify
) -> None:
    """With LOG_LEVEL=DEBUG spotipy logs its token request with the client id and secret
    in base64 (`Authorization: Basic ...`) and each API call with its bearer token."""
    spotify_fake.add_track("t1", "Artist", "Song")
    secret = spotify_fake.client_secret
    setup_logging(level="DEBUG", fmt=fmt, log_dir=tmp_path, secrets=[secret])
    credentials = spotipy.SpotifyClientCredentials(
        spotify_fake.client_id, secret, cache_handler=spotipy.MemoryCacheHandler()
    )
    client = spotipy.Spotify(client_credentials_manager=credentials, retries=0)
    track = await asyncio.to_thread(client.track, "t1")
    assert track is not None and track["name"] == "Song"
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "bot.log").read_text()
    basic = base64.b64encode(f"{spotify_fake.client_id}:{secret}".encode()).decode()
    cached = credentials.cache_handler.get_cached_token()
    assert cached is not None
    bearer = cached["access_token"]
    assert "Sending POST request" in text and "Sending GET" in text  # spotipy's lines
    for leaked in (secret, basic, bearer):
        assert leaked not in text
    assert f"Basic {REDACTED}" in text and f"Bearer {REDACTED}" in text
