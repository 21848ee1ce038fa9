"""Several bot processes on one PostgreSQL: a setting changed through one is used by the
others within a second, also after their listening connection was lost, and a bot-wide
job runs in one of them at a time.

Each `PostgresDatabase` stands for one process: two of them on one database, each with
its own stores (and caches), as two bot processes would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot import Bot
from cogs.admin.maintenance import Maintenance
from cogs.admin.retention import PendingDeletions
from cogs.ai.store import ChatStore
from cogs.music.settings import MusicSettingsStore
from cogs.roleplay.scenes import SceneStore
from config import Settings
from tests.conftest import eventually
from utils.db import DB_ERRORS, EVERYTHING
from utils.db_postgres import PostgresDatabase
from utils.db_postgres_sessions import unlock
from utils.guild_settings import GuildSettings
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

pytestmark = pytest.mark.backends("postgresql")

GUILD = 1001
CHANNEL = 2002
PLAYING = 3003  # a guild with a music player in the second process


@pytest.fixture
async def processes(database_url: str) -> AsyncIterator[tuple[PostgresDatabase, PostgresDatabase]]:
    """The databases of two bot processes, both listening for changes."""
    pair = (PostgresDatabase(database_url), PostgresDatabase(database_url))
    for db in pair:
        await db.connect()
    await eventually(lambda: _listeners(database_url), equals=2)
    yield pair
    for db in pair:
        await db.close()


async def _admin(database_url: str, sql: str) -> int:
    """Run ``sql`` (which counts something) on a connection of its own."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


_LISTENERS = "FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"


async def _listeners(database_url: str) -> int:
    return await _admin(database_url, f"SELECT count(*) {_LISTENERS}")


async def _kill_listeners(database_url: str) -> None:
    killed = await _admin(database_url, f"SELECT count(pg_terminate_backend(pid)) {_LISTENERS}")
    assert killed == 2


def _recorder(db: PostgresDatabase) -> list[tuple[str, str]]:
    heard: list[tuple[str, str]] = []

    async def record(topic: str, key: str) -> None:
        heard.append((topic, key))

    db.on_change(record)
    return heard


async def test_a_prefix_changed_in_one_process_is_used_by_the_other_within_a_second(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here, there = (GuildSettings(db, "!") for db in processes)
    for settings in (here, there):
        settings.db.on_change(settings.changed)
        await settings.load()

    await here.set_prefix(GUILD, "?")
    await eventually(lambda: there.prefix(GUILD), equals="?", within=1.0)
    await here.delete_guild(GUILD)
    await eventually(lambda: there.prefix(GUILD), equals="!", within=1.0)


async def test_ai_preferences_changed_in_one_process_are_used_by_the_other(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here, there = (ChatStore(db) for db in processes)
    for store in (here, there):
        store.db.on_change(store.changed)
        await store.prefs.load_autorespond()
    # Read there first, so that it holds copies a missed change would leave stale.
    assert (await there.prefs.channel(CHANNEL)).persona is None
    assert (await there.prefs.guild(GUILD)).model is None

    await here.prefs.update_channel(GUILD, CHANNEL, persona="pirate", autorespond=True)
    await eventually(lambda: there.prefs.autoresponds(CHANNEL), within=1.0)
    assert (await there.prefs.channel(CHANNEL)).persona == "pirate"

    async def model() -> str | None:
        return (await there.prefs.guild(GUILD)).model

    await here.prefs.set_guild_model(GUILD, "gemini-x")
    await eventually(model, equals="gemini-x", within=1.0)

    async def tools() -> frozenset[str] | None:
        return (await there.prefs.guild(GUILD)).tools

    await here.prefs.set_guild_tools(GUILD, frozenset({"music"}))
    await eventually(tools, equals=frozenset({"music"}), within=1.0)

    await here.data.delete_channel(CHANNEL)  # as a retention pass in the first process would
    await eventually(lambda: not there.prefs.autoresponds(CHANNEL), within=1.0)
    assert (await there.prefs.channel(CHANNEL)).persona is None


async def test_music_settings_changed_in_one_process_are_used_by_the_other(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here = MusicSettingsStore(processes[0], keep=lambda _: False)
    there = MusicSettingsStore(processes[1], keep=lambda guild_id: guild_id == PLAYING)
    processes[1].on_change(there.changed)
    for guild_id in (GUILD, PLAYING):
        assert (await there.get(guild_id)).dj_role_id is None  # now held there

    async def dj_role() -> int | None:
        return (await there.get(GUILD)).dj_role_id

    await here.update(GUILD, dj_role_id=42)
    await eventually(dj_role, equals=42, within=1.0)

    # A guild with a player has its settings in memory all along (its controls read them).
    await here.update(PLAYING, autoplay=True, stay=True, stay_channel_id=7)
    await eventually(lambda: _autoplay(there, PLAYING), within=1.0)
    assert there.cached(PLAYING) == await here.get(PLAYING)


def _autoplay(store: MusicSettingsStore, guild_id: int) -> bool:
    """Whether the guild's settings are in memory, with autoplay on."""
    settings = store.cached(guild_id)
    return settings is not None and settings.autoplay


async def test_a_scene_ended_in_one_process_stops_in_the_other(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here, there = (SceneStore(db) for db in processes)
    for store in (here, there):
        store.db.on_change(store.changed)
    await _add_scene(processes[0], CHANNEL)
    await there.load()
    assert there.running(CHANNEL)

    assert await here.end(CHANNEL)
    await eventually(lambda: not there.running(CHANNEL), within=1.0)


async def test_a_scene_started_in_one_process_runs_in_the_other(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here, there = (SceneStore(db) for db in processes)
    processes[1].on_change(there.changed)
    await there.load()
    await here.start(GUILD, CHANNEL, owner_id=1, characters=[], world=None)
    await eventually(lambda: there.running(CHANNEL), within=1.0)


async def _add_scene(db: PostgresDatabase, channel_id: int) -> None:
    await db.execute(
        "INSERT INTO rp_scenes (channel_id, guild_id, owner_id, world, characters, state, "
        "turns, started_at, updated_at) VALUES (?, ?, 1, NULL, '[]', '[]', 0, ?, ?)",
        (channel_id, GUILD, time.time(), time.time()),
    )


async def test_a_prefix_changed_while_another_process_starts_is_used_there(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The starting process reads its caches once its database is open: a change told
    before it listened would never reach it (here its LISTEN is slow to go through)."""
    here = PostgresDatabase(database_url)
    await here.connect()
    there = PostgresDatabase(database_url)
    real = asyncpg.Connection.add_listener

    async def slow(conn: asyncpg.Connection, *args: Any) -> None:
        await asyncio.sleep(0.5)
        await real(conn, *args)

    monkeypatch.setattr(asyncpg.Connection, "add_listener", slow)
    try:
        await there.connect()
        starting = GuildSettings(there, "!")
        there.on_change(starting.changed)
        await starting.load()
        await GuildSettings(here, "!").set_prefix(GUILD, "?")
        await eventually(lambda: starting.prefix(GUILD), equals="?", within=2.0)
    finally:
        for db in (here, there):
            await db.close()


async def test_changes_arrive_again_once_the_listening_connection_is_back(
    processes: tuple[PostgresDatabase, PostgresDatabase], database_url: str
) -> None:
    here, there = (GuildSettings(db, "!") for db in processes)
    processes[1].on_change(there.changed)
    heard = _recorder(processes[1])

    await _kill_listeners(database_url)
    await eventually(lambda: (EVERYTHING, EVERYTHING) in heard)  # it is back
    await here.set_prefix(GUILD, "?")
    # The recorder is told after `changed` has finished: wait for it, then look.
    await eventually(lambda: heard[-1], equals=("prefix", str(GUILD)), within=1.0)
    assert there.prefix(GUILD) == "?"

    processes[1].off_change(there.changed)  # e.g. its cog unloaded
    await here.set_prefix(GUILD, "%")
    await eventually(lambda: heard.count(("prefix", str(GUILD))) == 2)  # told after `changed`
    assert there.prefix(GUILD) == "?"


async def test_after_a_lost_connection_every_cache_reads_what_it_may_have_missed(
    processes: tuple[PostgresDatabase, PostgresDatabase], database_url: str
) -> None:
    """Changes made while a process was not listening (here: written without a notice)
    are read again by every cache once the connection is back."""
    db = processes[1]
    prefixes, chats = GuildSettings(db, "!"), ChatStore(db)
    music, scenes = MusicSettingsStore(db, keep=lambda g: g == PLAYING), SceneStore(db)
    for store in (prefixes, chats, music, scenes):
        db.on_change(store.changed)
    await prefixes.load()
    await chats.prefs.load_autorespond()
    await scenes.load()
    await music.get(PLAYING)
    assert (await chats.prefs.guild(GUILD)).model is None

    writer = processes[0]
    await writer.execute(
        "INSERT INTO guild_settings (guild_id, prefix, updated_at) VALUES (?, '?', 'now')",
        (GUILD,),
    )
    await writer.execute(
        "INSERT INTO ai_channels (channel_id, guild_id, autorespond) VALUES (?, ?, 1)",
        (CHANNEL, GUILD),
    )
    await writer.execute("INSERT INTO ai_guilds (guild_id, model) VALUES (?, 'gemini-x')", (GUILD,))
    await writer.execute(
        "INSERT INTO music_settings (guild_id, autoplay, updated_at) VALUES (?, 1, 0)", (PLAYING,)
    )
    await _add_scene(writer, CHANNEL)
    assert prefixes.prefix(GUILD) == "!" and not chats.prefs.autoresponds(CHANNEL)

    await _kill_listeners(database_url)
    await eventually(lambda: prefixes.prefix(GUILD), equals="?")
    await eventually(lambda: chats.prefs.autoresponds(CHANNEL))
    await eventually(lambda: scenes.running(CHANNEL))
    await eventually(lambda: _autoplay(music, PLAYING))
    assert (await chats.prefs.guild(GUILD)).model == "gemini-x"


def _sabotage_listening(
    db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch, failure: Callable[..., Any]
) -> list[asyncpg.Connection]:
    """Make the next LISTEN of ``db``'s listener fail with ``failure(connection, url)``;
    returns the connections it failed on (one, once it has happened)."""
    real = asyncpg.Connection.add_listener
    failed: list[asyncpg.Connection] = []

    async def add_listener(conn: asyncpg.Connection, *args: Any) -> None:
        if not failed and asyncio.current_task() is db._changes.task:
            failed.append(conn)
            await failure(conn, db.url)
        await real(conn, *args)

    monkeypatch.setattr(asyncpg.Connection, "add_listener", add_listener)
    return failed


async def _dropped_by_the_server(conn: asyncpg.Connection, url: str) -> None:
    """A restart, a failover, a pooler or an operator ends it before LISTEN is sent."""
    await _admin(url, f"SELECT pg_terminate_backend({conn.get_server_pid()})")
    await eventually(conn.is_closed)


async def _goodbye_read_close_not_seen(_conn: asyncpg.Connection, _url: str) -> None:
    raise asyncpg.InternalClientError(
        "cannot switch to state 11; another operation (2) is in progress"
    )


@pytest.mark.parametrize(
    "failure", [_dropped_by_the_server, _goodbye_read_close_not_seen], ids=["dropped", "closing"]
)
async def test_changes_arrive_again_after_the_connection_is_lost_while_listening_starts(
    processes: tuple[PostgresDatabase, PostgresDatabase],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Callable[..., Any],
) -> None:
    here, there = (GuildSettings(db, "!") for db in processes)
    processes[1].on_change(there.changed)
    heard = _recorder(processes[1])
    failed = _sabotage_listening(processes[1], monkeypatch, failure)

    await _kill_listeners(database_url)
    await eventually(lambda: failed)  # its first reconnect is lost before LISTEN
    await eventually(lambda: (EVERYTHING, EVERYTHING) in heard)  # the next one listens
    await here.set_prefix(GUILD, "?")
    await eventually(lambda: there.prefix(GUILD), equals="?", within=1.0)
    assert "change listener cannot connect (lost it: " in caplog.text


async def test_a_listener_that_stops_on_a_bug_says_so(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = PostgresDatabase(database_url)

    async def bug(_conn: asyncpg.Connection, _url: str) -> None:
        raise RuntimeError("a bug")

    _sabotage_listening(db, monkeypatch, bug)
    await db.connect()
    try:
        await eventually(lambda: db._changes.task is not None and db._changes.task.done())
    finally:
        await db.close()
    assert "change listener stopped: settings changed by other processes" in caplog.text


async def test_changes_arrive_within_a_second_of_the_server_being_back_after_an_outage(
    processes: tuple[PostgresDatabase, PostgresDatabase],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the server is down the listener tries again and again; it waits at most a
    second between tries, so it listens again at most a second after the server is back
    (the waits are recorded, not slept: the outage is a count of refused connections)."""
    there = processes[1]
    heard = _recorder(there)
    real_connect, real_sleep = asyncpg.connect, asyncio.sleep
    refusals = 0
    waits: list[float] = []

    async def refused() -> asyncpg.Connection:
        raise ConnectionRefusedError(111, "Connect call failed")

    def connect(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, asyncpg.Connection]:
        nonlocal refusals  # asked by the listener's task (the attempt runs in one of its own)
        if refusals and asyncio.current_task() is there._changes.task:
            refusals -= 1
            return refused()
        return real_connect(*args, **kwargs)

    async def sleep(delay: float, result: Any = None) -> Any:
        if asyncio.current_task() is there._changes.task:
            waits.append(delay)
            delay = 0
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncpg, "connect", connect)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    refusals = 10  # a long outage: the tries of an ever longer wait would reach 2 minutes
    await _kill_listeners(database_url)
    await eventually(lambda: (EVERYTHING, EVERYTHING) in heard)
    assert refusals == 0 and len(waits) == 10
    assert max(waits) <= 1.0, waits
    assert caplog.text.count("change listener cannot connect") == 1  # not one a second


class _Relay:
    """A TCP relay to PostgreSQL whose connections so far can be silenced: nothing they
    send arrives any more, and nothing closes them, as when a NAT or a firewall forgets
    an idle connection or the server's host is gone. Connections made later pass."""

    def __init__(self, database_url: str) -> None:
        self._target = urlsplit(database_url)
        self._silenced: set[asyncio.StreamWriter] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> _Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        login, _, _ = self._target.netloc.rpartition("@")
        where = f"127.0.0.1:{port}"
        self.url = self._target._replace(netloc=f"{login}@{where}" if login else where).geturl()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def silence(self) -> None:
        self._silenced.update(self._writers)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            self._target.hostname, self._target.port
        )
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if writer not in self._silenced:
                writer.write(data)
        writer.close()


async def test_changes_arrive_again_after_the_listening_connection_went_silent(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection nobody closes tells nothing: the listener asks it a question now and
    then, and connects again when no answer comes."""
    monkeypatch.setattr("utils.db_postgres_sessions.PROBE", 0.2)
    async with _Relay(database_url) as relay:
        here, there = PostgresDatabase(database_url), PostgresDatabase(relay.url, timeout=1.0)
        for db in (here, there):
            await db.connect()
        try:
            await eventually(lambda: _listeners(database_url), equals=2)
            heard = _recorder(there)
            relay.silence()  # its listener's connection among them
            await eventually(lambda: (EVERYTHING, EVERYTHING) in heard)  # it is back
            await here.notify("prefix", GUILD)
            await eventually(lambda: heard[-1], equals=("prefix", str(GUILD)), within=1.0)
        finally:
            await here.close()
    await there.close()  # once the relay has closed what it silenced


async def test_a_process_whose_database_went_silent_closes_without_an_error(
    database_url: str,
) -> None:
    """At shutdown: the goodbye goes unanswered; the connections are dropped after the
    timeout, and the shutdown step does not fail."""
    async with _Relay(database_url) as relay:
        db = PostgresDatabase(relay.url, timeout=1.0)
        await db.connect()
        assert await db.fetchval("SELECT 1") == 1
        relay.silence()
        started = time.monotonic()
        await db.close()
        assert time.monotonic() - started < 3


async def test_a_change_being_delivered_at_close_is_stopped_quietly(
    processes: tuple[PostgresDatabase, PostgresDatabase], caplog: pytest.LogCaptureFixture
) -> None:
    """A cache still refreshing when its process closes the database stops there: it
    would otherwise go on to read a closed database and log a traceback."""
    here, there = processes
    entered, release = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def refresh(topic: str, key: str) -> None:
        entered.set()
        try:
            await release.wait()
            await there.fetchval("SELECT 1")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    there.on_change(refresh)
    await here.notify("prefix", GUILD)
    await asyncio.wait_for(entered.wait(), 5)
    await there.close()
    assert outcome == ["cancelled"]
    release.set()
    assert "a change listener failed" not in caplog.text


async def test_only_one_process_holds_a_bot_wide_lock_and_it_is_released_after(
    processes: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    here, there = processes
    async with here.exclusive("job") as ours:
        assert ours
        async with there.exclusive("job") as theirs:
            assert not theirs
        async with there.exclusive("another job") as another:
            assert another
    async with there.exclusive("job") as theirs:
        assert theirs


async def _end_lock_holders(database_url: str) -> None:
    """End the connections holding advisory locks, as idle_session_timeout would."""
    killed = await _admin(
        database_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert killed == 1


async def test_a_job_whose_lock_went_with_its_connection_stops_and_another_process_runs_it(
    processes: tuple[PostgresDatabase, PostgresDatabase],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    here, there = processes
    steps: list[str] = []
    forever = asyncio.Event()

    async def job(db: PostgresDatabase, who: str) -> bool:
        async with db.exclusive("job") as ours:
            if ours:
                steps.append(f"{who} starts")
                await forever.wait()  # a long pass
                steps.append(f"{who} goes on")
        return ours

    running = asyncio.create_task(job(here, "here"))
    await eventually(lambda: steps == ["here starts"])
    await _end_lock_holders(database_url)
    async with asyncio.timeout(5):
        assert await running  # stopped: the block ends, quietly for its caller
    assert "lost the lock 'job' (its connection went away): its job stopped" in caplog.text
    taken = asyncio.create_task(job(there, "there"))
    await eventually(lambda: steps == ["here starts", "there starts"])
    forever.set()
    assert await taken
    assert steps == ["here starts", "there starts", "there goes on"]  # here never went on
    async with here.exclusive("job") as ours:
        assert ours  # the pool gives a live connection again


async def test_a_job_whose_lock_connection_went_silent_stops(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection nobody closes (a network drop) is asked a question now and then; no
    answer in time, and the job stops: the server may give the lock to another."""
    monkeypatch.setattr("utils.db_postgres_sessions.PROBE", 0.2)
    async with _Relay(database_url) as relay:
        db = PostgresDatabase(relay.url, timeout=1.0)
        await db.connect()
        went_on = False
        try:
            async with asyncio.timeout(5), db.exclusive("job") as ours:
                assert ours
                relay.silence()
                await asyncio.sleep(10)
                went_on = True
        finally:
            await db.close()
        assert not went_on


async def test_a_lock_whose_release_never_ran_is_gone_once_its_connection_is_back(
    processes: tuple[PostgresDatabase, PostgresDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = processes

    async def interrupted(*_args: object) -> None:  # as if cancelled before it was sent
        return None

    monkeypatch.setattr("utils.db_postgres.unlock", interrupted)
    async with here.exclusive("job") as ours:
        assert ours
    async with there.exclusive("job") as theirs:
        assert theirs


async def test_a_pooled_query_takes_one_trip_with_no_reset_after_it(database_url: str) -> None:
    db = PostgresDatabase(database_url, pool_size=1)
    await db.connect()
    try:
        assert await db.fetchval("SELECT 40 + 2") == 42
        conn = await asyncpg.connect(database_url)
        try:
            last = await conn.fetch(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND query NOT LIKE 'LISTEN%'"
            )
        finally:
            await conn.close()
    finally:
        await db.close()
    assert [row["query"] for row in last] == ["SELECT 40 + 2"]


class _EndedConnection:
    """A pooled connection whose server has just said goodbye: asyncpg has read the
    message but not yet seen the socket close, and refuses the next query."""

    async def execute(self, *_args: object, **_kwargs: object) -> str:
        raise asyncpg.InternalClientError(
            "cannot switch to state 11; another operation (2) is in progress"
        )

    fetch = execute


async def test_a_query_on_a_connection_the_server_just_ended_fails_as_a_database_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers (the readiness check, saving a queue) catch DB_ERRORS: asyncpg's
    InternalClientError, right after the server dropped pooled connections, is one."""
    db = PostgresDatabase(database_url)
    await db.connect()

    @asynccontextmanager
    async def ended() -> AsyncIterator[_EndedConnection]:
        yield _EndedConnection()

    monkeypatch.setattr(db, "_acquire", ended)
    try:
        with pytest.raises(DB_ERRORS):
            await db.ping()
    finally:
        await db.close()


async def test_a_bot_wide_job_can_use_the_database_with_a_pool_of_one(database_url: str) -> None:
    """The lock is held on a connection of its own: with DATABASE_POOL_SIZE=1 the
    retention pass inside it still gets the pool's connection."""
    db = PostgresDatabase(database_url, pool_size=1, timeout=2.0)
    await db.connect()
    try:
        async with db.exclusive("retention") as ours:  # as Maintenance.retention_loop
            assert ours
            assert await PendingDeletions(db, grace=0).due() == []
    finally:
        await db.close()


async def test_a_lock_is_let_go_quietly_while_its_connection_is_still_closing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await unlock(_EndedConnection(), "job")  # type: ignore[arg-type]  # asyncpg's part only
    assert "lost the lock 'job' before its job ended (InternalClientError)" in caplog.text


class _Gate:
    """A data owner whose deletions wait until the test lets them through."""

    def __init__(self, name: str, log: list[str], open_: asyncio.Event) -> None:
        self.name, self.log, self.open = name, log, open_

    async def delete_channel(self, channel_id: int) -> int:
        self.log.append(self.name)
        await self.open.wait()
        return 1

    async def delete_guild(self, guild_id: int) -> int:
        return await self.delete_channel(guild_id)


async def test_a_retention_pass_that_lost_its_lock_stops_and_the_next_holder_finishes_it(
    database_url: str, tmp_path: Path
) -> None:
    passes: list[str] = []
    through = asyncio.Event()
    cogs: list[Maintenance] = []
    bots: list[Bot] = []
    for name in ("first", "second"):
        bot = Bot(_settings(tmp_path / name, database_url))
        await bot.db.connect()
        bot.data_owners.register("gate", _Gate(name, passes, through))
        bots.append(bot)
        cogs.append(Maintenance(bot))
    try:
        first, second = cogs
        await first.pending.schedule("channel", CHANNEL, GUILD)
        first.pending.clock = second.pending.clock = _later(days=30)
        running = asyncio.create_task(first.retention_loop())
        await eventually(lambda: passes == ["first"])  # inside the pass, holding the lock
        await _end_lock_holders(database_url)
        async with asyncio.timeout(5):
            await running  # stopped, not stuck, and not the end of the hourly loop
        assert await second.pending.due() != []  # not marked done: it may not be
        through.set()
        await second.retention_loop()
        assert passes == ["first", "second"]
        assert await second.pending.due() == []
    finally:
        for bot in bots:
            await bot.db.close()


async def test_a_retention_pass_runs_in_one_process_at_a_time(
    database_url: str, tmp_path: Path
) -> None:
    passes: list[str] = []
    through = asyncio.Event()
    cogs: list[Maintenance] = []
    bots: list[Bot] = []
    for name in ("first", "second"):
        bot = Bot(_settings(tmp_path / name, database_url))
        await bot.db.connect()
        bot.data_owners.register("gate", _Gate(name, passes, through))
        bots.append(bot)
        cogs.append(Maintenance(bot))
    try:
        first, second = cogs
        await first.pending.schedule("channel", CHANNEL, GUILD)
        first.pending.clock = second.pending.clock = _later(days=30)

        running = asyncio.create_task(first.retention_loop())
        await eventually(lambda: passes == ["first"])  # inside the pass, holding the lock
        await second.retention_loop()  # finds the lock taken: skips this hour
        assert passes == ["first"]
        through.set()
        await running
        await second.retention_loop()  # the lock is free again: nothing is due
        assert passes == ["first"]
        assert await second.pending.due() == []
    finally:
        for bot in bots:
            await bot.db.close()


def _settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        discord_token="test-token",
        data_dir=data_dir,
        database_url=database_url,
    )


def _later(*, days: float) -> Callable[[], float]:
    return lambda: time.time() + days * 86_400


async def test_changes_arrive_again_after_the_connection_went_silent_while_listening_starts(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection made, then silent before LISTEN is answered (a failover, a NAT that
    forgot it): the LISTEN times out and the listener connects again, rather than wait
    for an answer that never comes and stay deaf until a restart."""
    async with _Relay(database_url) as relay:
        here, there = PostgresDatabase(database_url), PostgresDatabase(relay.url, timeout=1.0)
        for db in (here, there):
            await db.connect()
        try:
            await eventually(lambda: _listeners(database_url), equals=2)
            heard = _recorder(there)

            async def silenced(_conn: asyncpg.Connection, _url: str) -> None:
                relay.silence()  # the new listening connection among them

            failed = _sabotage_listening(there, monkeypatch, silenced)
            await _kill_listeners(database_url)  # here's and there's: both connect again
            await eventually(lambda: failed)
            await eventually(lambda: (EVERYTHING, EVERYTHING) in heard)  # listening again
            await here.notify("prefix", GUILD)
            await eventually(lambda: heard[-1], equals=("prefix", str(GUILD)), within=1.0)
        finally:
            await here.close()
    await there.close()  # once the relay has closed what it silenced


def _memory(db: PostgresDatabase, directory: Path, *, owner: bool) -> MemoryService:
    """The memory of a process that owns the indexes of GUILD and PLAYING, or of one
    that does not."""
    return MemoryService(
        db,
        HashingEmbedder(),
        directory=directory,
        config=MemoryConfig(consolidation_interval=0),
        owns=lambda guild_id: (guild_id in (GUILD, PLAYING)) == owner,
    )


async def test_memories_a_retention_pass_deleted_elsewhere_leave_their_owners_index(
    processes: tuple[PostgresDatabase, PostgresDatabase], database_url: str, tmp_path: Path
) -> None:
    """A retention pass runs in any one process; a guild's index lives in its shard's
    process (in memory and DATA_DIR), which drops it too, also when it missed the
    notice (not listening, or down): no vector of what was deleted stays there."""
    scope, other = Scope("guild", GUILD), Scope("guild", PLAYING)
    here = _memory(processes[0], tmp_path / "here", owner=False)
    there = _memory(processes[1], tmp_path / "there", owner=True)
    for service in (here, there):
        await service.start()
    try:
        await there.add_fact(scope, 7, "alice", "My cat is named Whiskers.")
        await there.indexes.save_dirty()
        assert there.indexes.path(scope).exists()
        assert await here.delete_guild(GUILD) == 1
        await eventually(lambda: not there.indexes.path(scope).exists(), within=1.0)
        assert there.indexes.loaded(scope) is None
        assert await there.recall(scope, "what is my cat named?") == []

        # Deleted unheard (as by a process whose notice was lost with the connection).
        await there.add_fact(scope, 7, "alice", "My dog is named Rex.")
        await there.indexes.save_dirty()
        await processes[0].execute("DELETE FROM memories WHERE scope = ?", (scope.key,))
        await _kill_listeners(database_url)
        await eventually(lambda: there.indexes.loaded(scope) is None)
        await eventually(lambda: not there.indexes.path(scope).exists())

        # Deleted while the owner was down: its file goes when it starts again.
        await there.add_fact(scope, 7, "alice", "My bird is named Kiwi.")
        await there.add_fact(other, 7, "alice", "My fish is named Nemo.")  # kept
        await there.close()
        assert there.indexes.path(scope).exists()
        heard = _recorder(processes[1])
        await here.delete_guild(GUILD)
        await eventually(lambda: ("memory", scope.key) in heard)  # and nobody took it
        there = _memory(processes[1], tmp_path / "there", owner=True)
        await there.start()
        assert not there.indexes.path(scope).exists()
        assert there.indexes.path(other).exists()
    finally:
        for service in (here, there):
            await service.close()
