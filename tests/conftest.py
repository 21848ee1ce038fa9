"""Shared fixtures: the fake Discord server and a bot started the way `python bot.py` does."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import discord.http
import pytest

from bot import Bot, discover_extensions, run
from config import Settings
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.media_server import FakeMediaServer, LocalSearchIE, register_local_search
from tests.fakes.spotify_server import FakeSpotify
from tests.fakes.voice_server import FakeVoiceServer
from utils.db import Database, open_database
from utils.db_postgres import PostgresDatabase
from utils.memory.embedder import SentenceEmbedder

ADMIN = 0x8  # Administrator
MANAGE_GUILD = 0x20
BASIC = 0x400 | 0x800 | 0x10000 | 0x40 | 0x4000 | 0x8000 | 0x100000 | 0x200000  # view, send, ...


async def eventually(check: Callable[[], Any], *, equals: Any = None, within: float = 10.0) -> Any:
    """Poll ``check`` (plain or async) every 10 ms until its result is truthy, or equal to
    ``equals`` when given; return the result. The one polling helper of the suite: it
    waits for a state, never for a guessed time."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result == equals if equals is not None else result:
            return result
        if time.monotonic() > deadline:
            name = getattr(check, "__qualname__", repr(check))
            wanted = f", expected {equals!r}" if equals is not None else ""
            raise AssertionError(f"{name} still gave {result!r} after {within}s{wanted}")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="session")
def sentence_embedder() -> SentenceEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once per session; the bot's own embedder then
    shares the weights (they are cached process-wide)."""
    embedder = SentenceEmbedder()
    embedder.load()
    return embedder


ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgresql")
_TEMPLATE = f"gembot_template_{os.getpid()}"  # one per process: pytest-xdist runs several
_databases = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses storage runs once per backend; ``@pytest.mark.backends(...)``
    narrows that for a test whose storage is beside the point."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL of a PostgreSQL server with a migrated template database:
    TEST_DATABASE_URL (what `.ci/run` starts), else a throwaway cluster of our own."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    scratch: Path | None = None
    if not url:
        scratch = Path(f"/tmp/gembot-pg-{os.getpid()}")
        started = subprocess.run(
            ["bash", "scripts/pg_scratch.sh", "start", str(scratch)],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            message = f"no PostgreSQL for the tests: {started.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        url = started.stdout.strip()
    # A loop of its own, in a thread: the first test that needs it may be inside one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _make_template(url)).result()
    yield url
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _drop_template(url)).result()
    if scratch is not None:
        subprocess.run(["bash", "scripts/pg_scratch.sh", "stop", str(scratch)], check=False)


async def _drop_template(server: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
    finally:
        await admin.close()


def _database_url(server: str, name: str) -> str:
    return f"{server.rsplit('/', 1)[0]}/{name}"


async def _make_template(server: str) -> None:

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {_TEMPLATE}")
    finally:
        await admin.close()
    template = PostgresDatabase(_database_url(server, _TEMPLATE))
    await template.connect()
    await template.close()


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Empty for SQLite; for PostgreSQL a new database, migrated, dropped afterwards."""
    if backend == "sqlite":
        yield ""
        return

    server: str = request.getfixturevalue("postgres_server")
    name = f"gembot_test_{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
    finally:
        await admin.close()
    yield _database_url(server, name)
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    """An open database with every migration applied: SQLite in this test's directory,
    or a fresh PostgreSQL database."""
    database = open_database(database_url, tmp_path / "bot.db")
    await database.connect()
    yield database
    await database.close()


@pytest.fixture
async def discord_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeDiscord]:
    """The fake Discord; ``@pytest.mark.shards(n)`` gives it n shards (the ``guild``
    fixture then lands on shard 0, ``far`` on shard 1)."""
    marker = request.node.get_closest_marker("shards")
    fake = FakeDiscord(shards=marker.args[0] if marker else 1)
    await fake.start()
    undo = fake.patch_discord()
    yield fake
    undo()
    await fake.stop()


@pytest.fixture
def guild(discord_fake: FakeDiscord) -> FakeGuild:
    guild = discord_fake.add_guild("Test Guild", owner=discord_fake.owner)
    guild.add_member(discord_fake.owner, permissions=ADMIN)
    return guild


@pytest.fixture
def member(discord_fake: FakeDiscord, guild: FakeGuild) -> FakeUser:
    """An ordinary member with no special permissions."""
    user = discord_fake.add_user("alice")
    guild.add_member(user, permissions=BASIC)
    return user


@pytest.fixture
def far(discord_fake: FakeDiscord, member: FakeUser) -> FakeGuild:
    """A guild on shard 1 (with ``@pytest.mark.shards(2)``): the owner (an admin) and
    the member are in it too."""
    guild = discord_fake.add_guild("Far", shard=1)
    guild.add_member(discord_fake.owner, permissions=ADMIN)
    guild.add_member(member, permissions=BASIC)
    return guild


@pytest.fixture
async def gemini_fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake


@pytest.fixture
def ai_settings(
    gemini_fake: FakeGemini, make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings for a bot whose Gemini is the local fake, tuned for fast tests."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "gemini_api_key": "test-gemini-key",
            "gemini_base_url": gemini_fake.url,
            "gemini_timeout": 5.0,
            "ai_edit_interval": 0.05,
            "ai_breaker_reset": 1.0,
            "memory_enabled": False,  # memory has its own tests; spares the model load
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def make_settings(tmp_path: Path, guild: FakeGuild, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "discord_token": "test-token",
            "data_dir": tmp_path / "data",
            "dev_guild_id": guild.id,
            "database_url": database_url or None,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(
    discord_fake: FakeDiscord, make_settings: Callable[..., Settings]
) -> AsyncIterator[StartBot]:
    """Start a Bot through `bot.run` (the code path of `python bot.py`)."""
    running: list[tuple[Bot, asyncio.Task[None]]] = []

    async def start(
        settings: Settings | None = None,
        *,
        extensions: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Bot:
        bot = Bot(
            settings or make_settings(),
            extensions=extensions if extensions is not None else discover_extensions(),
            clock=clock,
            guild_ready_timeout=0.1,
        )
        task = asyncio.create_task(run(bot))
        running.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=15, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()
            raise AssertionError("bot did not become ready")
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def voice_fake(
    discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeVoiceServer]:
    """A fake voice server that the bot's voice joins are sent to.

    discord.py always builds ``wss://{endpoint}``; the fake speaks plain ``ws://``.
    """
    original = discord.http.HTTPClient.ws_connect

    async def ws_connect(self: discord.http.HTTPClient, url: str, *, compress: int = 0) -> Any:
        return await original(self, url.replace("wss://", "ws://", 1), compress=compress)

    monkeypatch.setattr(discord.http.HTTPClient, "ws_connect", ws_connect)
    async with FakeVoiceServer() as voice:
        discord_fake.attach_voice(voice)
        yield voice


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated tones, shared by the whole session (each is made once)."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture
async def media_server(media_dir: Path) -> AsyncIterator[FakeMediaServer]:
    async with FakeMediaServer(media_dir) as server:
        yield server


@pytest.fixture
def local_search() -> Iterator[dict[str, tuple[str, str]]]:
    """The ``localsearch`` yt-dlp search: fill it with words → (title, URL)."""
    undo = register_local_search()
    yield LocalSearchIE.results
    undo()


@pytest.fixture
async def spotify_fake() -> AsyncIterator[FakeSpotify]:
    """A fake Spotify (two items per page, to exercise paging) that spotipy talks to."""
    async with FakeSpotify(page_size=2) as fake:
        undo = fake.patch_spotipy()
        yield fake
        undo()


@pytest.fixture
def music_settings(
    make_settings: Callable[..., Settings], local_search: dict[str, tuple[str, str]]
) -> Callable[..., Settings]:
    """Settings for music tests: local URLs allowed, the local search, short timeouts."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "music_allow_private_urls": True,
            "music_search_prefix": "localsearch",
            "music_resolve_timeout": 10.0,
            "memory_enabled": False,  # memory has its own tests; spares the model load
        }
        values.update(overrides)
        return make_settings(**values)

    return make


async def bot_stopped_at_start(fake: FakeDiscord, cwd: Path, status: int = 1, **env: str) -> str:
    """Run `python bot.py` with `env` (on top of a token and the fake Discord) until it
    exits at start-up; its whole output. It must exit with `status` (2: a bad setting,
    not restarted) with one ERROR line and no traceback: what a start refused for a
    reason the operator can act on looks like."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
            "DISCORD_TOKEN": "test-token-for-subprocess",
            "FAKE_DISCORD_URL": fake.url,
            "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.decode()
    assert process.returncode == status, log
    assert len([line for line in log.splitlines() if "ERROR" in line]) == 1, log
    assert "Traceback" not in log
    return log
