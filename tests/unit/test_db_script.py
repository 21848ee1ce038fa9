"""`python -m scripts.db`: check, backup, restore, vacuum, prune and export, on real files."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from cogs.music.library_store import LibraryStore
from cogs.music.settings import MusicSettingsStore
from cogs.music.store import MusicStore, Session
from cogs.music.tracks import Track
from cogs.roleplay.characters import CharacterStore, Profile
from cogs.roleplay.scenes import SceneStore
from config import Settings
from scripts.db import main
from utils.backup import STEP_PAGES, BackupError, make_backup, rotate_backups, schema_version
from utils.db import MIGRATIONS_DIR, Database, load_migrations
from utils.db_sqlite import SqliteDatabase
from utils.instance_lock import InstanceLock
from utils.memory.records import Scope
from utils.memory.store import MemoryStore, NewMemory

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
GUILD, OTHER = 111, 222


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def open_db(data_dir: Path) -> Database:
    db = SqliteDatabase(data_dir / "bot.db")
    await db.connect()
    return db


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def run(data_dir: Path, *args: str) -> int:
    return main(["--data-dir", str(data_dir), *args])


def files_of(directory: Path) -> dict[str, int]:
    """Each file's name and inode: a file replaced under its name has another."""
    return {path.name: path.stat().st_ino for path in directory.iterdir()}


async def arun(data_dir: Path, *args: str) -> int:
    """The CLI from a test with a running loop (it runs its own)."""
    return await asyncio.to_thread(run, data_dir, *args)


async def add_memory(db: Database, scope: Scope, source: str, text: str, age_days: float) -> None:
    memory = NewMemory(scope, 7, "alice", source, text, time.time() - age_days * DAY)  # type: ignore[arg-type]
    await MemoryStore(db).insert([memory], "test-model", np.ones((1, 4), dtype=np.float32))


async def test_backup_taken_during_a_write_burst_restores_every_committed_row(
    data_dir: Path,
) -> None:
    db = await open_db(data_dir)
    store = ChatStore(db, history_limit=1_000_000)
    # Enough data that copying it takes a while, so writes land while the backup runs.
    await store.add_turns(GUILD, 1, [Turn("user", 7, "alice", "x" * 2000)] * 3000)
    committed: list[str] = []
    stop, going = asyncio.Event(), asyncio.Event()

    async def burst() -> None:
        while not stop.is_set():
            text = f"burst {len(committed)}"
            await store.add_turns(GUILD, 2, [Turn("user", 7, "alice", text)])
            committed.append(text)
            if len(committed) == 20:
                going.set()

    writer = asyncio.create_task(burst())
    try:
        await asyncio.wait_for(going.wait(), 10)
        for _ in range(20):  # until a backup overlapped some writes (nearly always the first)
            before = list(committed)
            backup = await asyncio.to_thread(make_backup, data_dir / "bot.db")
            if len(committed) > len(before):
                break
    finally:
        stop.set()
        await writer
    assert len(committed) > len(before), "no write landed while the backup ran"
    await db.close()

    assert await arun(data_dir, "restore", str(backup)) == 0
    restored = [
        r[0]
        for r in rows(
            data_dir / "bot.db", "SELECT content FROM ai_messages WHERE channel_id = 2 ORDER BY id"
        )
    ]
    assert restored[: len(before)] == before  # every row committed before it began
    assert restored == committed[: len(restored)]  # and nothing half-written or reordered
    assert rows(data_dir / "bot.db", "PRAGMA integrity_check") == [("ok",)]


def test_a_backup_in_steps_is_one_snapshot_despite_writes_between_them(tmp_path: Path) -> None:
    """The copy goes in steps (so a stop can end it); a write between two of them neither
    enters the copy nor starts it over."""
    database = tmp_path / "bot.db"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE ballast (data BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (randomblob(4000))", [()] * 3 * STEP_PAGES)
    writer = sqlite3.connect(database, isolation_level=None)

    class WriteBetweenSteps(threading.Event):
        steps = 0

        def is_set(self) -> bool:
            self.steps += 1
            if self.steps <= 3:  # a copy started over at each write would never end
                writer.execute("INSERT INTO ballast VALUES (randomblob(4000))")
            return False

    between = WriteBetweenSteps()
    backup = make_backup(database, tmp_path / "copy.db", stop=between)
    writer.close()
    assert 3 <= between.steps <= 4, "each step once: never started over"
    assert rows(backup, "SELECT count(*) FROM ballast") == [(3 * STEP_PAGES,)]
    assert rows(database, "SELECT count(*) FROM ballast") == [(3 * STEP_PAGES + 3,)]


def test_a_backup_into_a_directory_not_made_yet_is_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backup newdir/` names a directory: no file named `newdir` is written instead."""
    with pytest.raises(SystemExit) as exited:
        run(data_dir, "backup", f"{tmp_path / 'newdir'}/")
    assert exited.value.code == 2
    assert "newdir/: no such directory; create it first" in capsys.readouterr().err
    assert not (tmp_path / "newdir").exists()


async def test_restore_keeps_the_replaced_db_and_drops_memory_indexes(data_dir: Path) -> None:
    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "before")])
    await db.close()
    assert await arun(data_dir, "backup") == 0
    (backup,) = (data_dir / "backups").glob("manual-*.db")

    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "after")])
    await db.close()
    index = data_dir / "memory" / "guild-111.faiss"
    index.parent.mkdir()
    index.write_bytes(b"an index of the replaced database")

    assert await arun(data_dir, "restore", str(backup)) == 0
    assert rows(data_dir / "bot.db", "SELECT content FROM ai_messages") == [("before",)]
    (aside,) = (data_dir / "backups").glob("replaced-*.db")
    assert rows(aside, "SELECT content FROM ai_messages ORDER BY id") == [("before",), ("after",)]
    assert not index.exists()
    db = await open_db(data_dir)  # the bot opens it as usual
    assert await db.fetchval("SELECT count(*) FROM ai_messages") == 1
    await db.close()


async def test_restore_vacuum_and_prune_refuse_while_the_bot_runs(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await (await open_db(data_dir)).close()
    backup = make_backup(data_dir / "bot.db")
    with InstanceLock(data_dir):  # what a running bot holds
        assert await arun(data_dir, "restore", str(backup)) == 3
        assert await arun(data_dir, "vacuum") == 3
        assert await arun(data_dir, "prune", "--older-than", "30") == 3
        assert await arun(data_dir, "backup") == 0  # safe beside the bot
        assert await arun(data_dir, "check") == 0
    err = capsys.readouterr().err
    assert err.count(f"the bot is running on {data_dir}; stop it first") == 3
    assert await arun(data_dir, "vacuum") == 0


def test_restore_refuses_a_broken_backup_and_changes_nothing(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fresh(data_dir))
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    before = (data_dir / "bot.db").read_bytes()
    assert run(data_dir, "restore", str(broken)) == 1
    assert "failed its check" in capsys.readouterr().err
    assert (data_dir / "bot.db").read_bytes() == before
    assert not list(data_dir.glob("backups/replaced-*"))


async def _fresh(data_dir: Path) -> None:
    await (await open_db(data_dir)).close()


async def test_check_finds_broken_foreign_keys_and_corruption(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _fresh(data_dir)
    assert await arun(data_dir, "check") == 0
    assert "ok (integrity and foreign keys)" in capsys.readouterr().out
    with sqlite3.connect(data_dir / "bot.db") as conn:  # foreign keys are off by default
        conn.execute(
            "INSERT INTO music_tracks (guild_id, slot, title, source, requester_id) "
            "VALUES (5, 0, 't', 's', 1)"
        )
    assert await arun(data_dir, "check") == 1
    out = capsys.readouterr().out
    assert "music_tracks row 1: no matching row in music_sessions" in out

    (data_dir / "bot.db").write_bytes(b"not a database at all" * 100)
    assert await arun(data_dir, "check") == 1
    assert "not a usable SQLite database" in capsys.readouterr().out
    assert await arun(tmp_dir := data_dir / "nothing-here", "check") == 1
    assert f"no database at {tmp_dir / 'bot.db'}" in capsys.readouterr().err


async def test_prune_keeps_recent_history_and_pinned_facts(data_dir: Path) -> None:
    db = await open_db(data_dir)
    chat = ChatStore(db, history_limit=100)
    await chat.add_turns(GUILD, 1, [Turn("user", 7, "alice", "old")])
    await db.execute("UPDATE ai_messages SET created_at = created_at - ?", (40 * DAY,))
    await chat.add_turns(GUILD, 1, [Turn("user", 7, "alice", "new")])
    await chat.prefs.update_channel(GUILD, 1, summary="about old things", summary_upto=1)
    await chat.prefs.update_channel(GUILD, 3, summary="kept", summary_upto=0)
    scope = Scope("guild", GUILD)
    await add_memory(db, scope, "conversation", "old chunk", 40)
    await add_memory(db, scope, "consolidation", "old extracted fact", 40)
    await add_memory(db, scope, "user", "old pinned fact", 40)
    await add_memory(db, scope, "conversation", "new chunk", 1)
    await db.close()
    index = data_dir / "memory" / scope.filename
    index.parent.mkdir()
    index.write_bytes(b"stale")

    assert await arun(data_dir, "prune", "--older-than", "30") == 0
    path = data_dir / "bot.db"
    assert rows(path, "SELECT content FROM ai_messages") == [("new",)]
    assert rows(path, "SELECT channel_id, summary FROM ai_channels ORDER BY channel_id") == [
        (1, None),
        (3, "kept"),
    ]
    assert rows(path, "SELECT text FROM memories ORDER BY id") == [
        ("old pinned fact",),
        ("new chunk",),
    ]
    assert not index.exists()
    assert await arun(data_dir, "prune", "--older-than", "30", "--include-facts") == 0
    assert rows(path, "SELECT text FROM memories") == [("new chunk",)]


def test_prune_needs_a_positive_number_of_days(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("abc", "0", "-3"):
        with pytest.raises(SystemExit) as exit_info:
            run(data_dir, "prune", "--older-than", bad)
        assert exit_info.value.code == 2
    assert "DAYS must be" in capsys.readouterr().err


@pytest.mark.parametrize("days", ["1e6", "inf", "nan"])
def test_prune_says_how_many_days_it_takes_at_most(
    data_dir: Path, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, "prune", "--older-than", days)
    assert exit_info.value.code == 2
    assert "DAYS must be more than 0 and less than 100000" in capsys.readouterr().err


@pytest.mark.parametrize("guild", ["abc", "0", "-5", "99999999999999999999999"])
async def test_export_of_something_that_is_no_server_id_is_bad_usage_in_one_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str], guild: str
) -> None:
    await (await open_db(data_dir)).close()
    with pytest.raises(SystemExit) as exit_info:
        await arun(data_dir, "export", "--guild", guild)
    assert exit_info.value.code == 2
    assert "ID must be a server id" in capsys.readouterr().err


async def test_a_backup_onto_the_database_itself_is_refused_and_changes_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "kept")])
    database = data_dir / "bot.db"
    before = files_of(data_dir)
    try:
        for target in (database, Path(f"{database}-wal")):
            assert await arun(data_dir, "backup", str(target)) == 1
            assert capsys.readouterr().err == (
                f"error: {target} is the database itself; give another file or a directory\n"
            )
        assert files_of(data_dir) == before
        await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "still written")])
    finally:
        await db.close()
    assert rows(database, "SELECT content FROM ai_messages") == [("kept",), ("still written",)]


async def test_export_writes_one_guilds_data_as_json_lines(data_dir: Path) -> None:
    db = await open_db(data_dir)
    chat = ChatStore(db)
    await chat.add_turns(GUILD, 1, [Turn("user", 7, "alice", "hello ünïcode")])
    await chat.add_turns(OTHER, 2, [Turn("user", 8, "bob", "secret of another guild")])
    await chat.prefs.update_channel(GUILD, 1, persona="pirate")
    await chat.prefs.set_guild_model(GUILD, "gemini-x")
    await db.execute("INSERT INTO guild_settings (guild_id, prefix) VALUES (?, '?')", (GUILD,))
    await add_memory(db, Scope("guild", GUILD), "user", "likes tea", 0)
    await add_memory(db, Scope("guild", OTHER), "user", "likes coffee", 0)
    await MusicStore(db).save(
        Session(GUILD, 55, 66, current=Track("Song", "http://x/a.wav", 7), upcoming=[])
    )
    await MusicSettingsStore(db, keep=lambda _: False).update(GUILD, autoplay=True)
    await MusicSettingsStore(db, keep=lambda _: False).update(OTHER, dj_role_id=9)
    await LibraryStore(db).save(GUILD, 7, "Mine", [Track("Song", "http://x/a.wav", 7)])
    await LibraryStore(db).save(OTHER, 7, "Theirs", [Track("Other", "http://x/b.wav", 7)])
    characters = CharacterStore(db, limit=10)
    aria = await characters.create(GUILD, 7, Profile("Aria", "A bard."), b"\x89PNG")
    await characters.create(OTHER, 8, Profile("Nemo", "Not exported."), None)
    await SceneStore(db).start(GUILD, 3, 7, [aria.id], world="A rainy port.")
    await SceneStore(db).set_world(GUILD, "The server's lore.")
    await db.close()

    out = data_dir / "export.jsonl"
    assert await arun(data_dir, "export", "--guild", str(GUILD), "--output", str(out)) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    tables = [line["table"] for line in lines]
    assert tables == [
        "guild_settings",
        "ai_guilds",
        "ai_channels",
        "ai_messages",
        "memories",
        "music_sessions",
        "music_tracks",
        "music_settings",
        "music_playlists",
        "music_playlist_tracks",
        "rp_characters",
        "rp_scenes",
        "rp_worlds",
    ]
    text = out.read_text(encoding="utf-8")
    assert "hello ünïcode" in text and "likes tea" in text and "Song" in text
    assert "A bard." in text and "A rainy port." in text and "The server's lore." in text
    [character] = [line["row"] for line in lines if line["table"] == "rp_characters"]
    assert base64.b64decode(character["avatar"]) == b"\x89PNG"
    assert "another guild" not in text and "coffee" not in text and "vector" not in text
    assert "Theirs" not in text and "Nemo" not in text
    assert lines[3]["row"]["author_name"] == "alice"


def test_cli_runs_without_a_discord_token_and_reports_by_exit_status(
    data_dir: Path, tmp_path: Path
) -> None:
    asyncio.run(_fresh(data_dir))
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env["DATA_DIR"] = str(data_dir)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.db", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    checked = cli("check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{data_dir / 'bot.db'}: ok (integrity and foreign keys)\n"
    backed_up = cli("backup", str(tmp_path / "copy.db"))
    assert backed_up.returncode == 0 and (tmp_path / "copy.db").exists()
    into_dir = cli("backup", str(tmp_path))
    assert into_dir.returncode == 0 and len(list(tmp_path.glob("manual-*.db"))) == 1
    missing = cli("restore", str(tmp_path / "nope.db"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no database at") and "Traceback" not in missing.stderr


def test_rotation_keeps_the_newest_and_never_touches_other_files(tmp_path: Path) -> None:
    names = [f"bot-2024010{day}-120000.db" for day in range(1, 8)]
    for name in [*names, "my-own-copy.db", "replaced-20240101-000000.db"]:
        (tmp_path / name).write_bytes(b"x")
    removed = rotate_backups(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == names[:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[4:], "my-own-copy.db", "replaced-20240101-000000.db"]
    )


def test_rotation_after_the_clock_was_set_back_keeps_the_backups_made_since(
    tmp_path: Path,
) -> None:
    """Backups are named by the wall clock: those made while it ran three days ahead
    sorted newest, so after it was set back each new backup was the first to go."""
    now = datetime.now(UTC)
    ahead, since = (
        [tmp_path / f"bot-{(now + timedelta(hours=h)).strftime('%Y%m%d-%H%M%S')}.db" for h in hours]
        for hours in ((72, 96, 120), (-48, -24, 0))
    )
    for path in [*ahead, *since]:
        path.write_bytes(b"x")
    assert sorted(rotate_backups(tmp_path, keep=3)) == ahead
    assert sorted(tmp_path.iterdir()) == since


def test_rotation_removes_partial_copies_a_killed_backup_left_but_not_one_being_written(
    tmp_path: Path,
) -> None:
    left = tmp_path / ".bot-20240101-120000.db.tmp"
    writing = tmp_path / ".bot-20240102-120000.db.tmp"
    other = tmp_path / ".my-notes.db.tmp"
    for path in (left, writing, other):
        path.write_bytes(b"x" * 1000)
    two_hours_ago = time.time() - 7200
    for path in (left, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert rotate_backups(tmp_path, keep=3) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([writing.name, other.name])


@pytest.mark.parametrize("folder", ["a#b", "a?b", "a%41"])
async def test_backup_restore_and_check_work_where_the_path_has_uri_characters(
    tmp_path: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / folder / "data"
    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "kept")])
    await db.close()
    assert await arun(data_dir, "backup") == 0
    (backup,) = (data_dir / "backups").glob("manual-*.db")
    assert rows(backup, "SELECT content FROM ai_messages") == [("kept",)]

    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "after the backup")])
    await db.close()
    assert await arun(data_dir, "restore", str(backup)) == 0
    assert rows(data_dir / "bot.db", "SELECT content FROM ai_messages") == [("kept",)]
    capsys.readouterr()
    assert await arun(data_dir, "check") == 0
    assert capsys.readouterr().out == f"{data_dir / 'bot.db'}: ok (integrity and foreign keys)\n"
    assert os.listdir(tmp_path) == [folder]  # no stray database beside it


def test_a_copy_that_does_not_match_its_database_is_not_kept(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_fresh(data_dir))

    def copy_the_wrong_file(source: Path, target: Path, stop: threading.Event | None) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(target).close()  # a sound but empty database
        return target

    monkeypatch.setattr("utils.backup.copy_database", copy_the_wrong_file)
    with pytest.raises(BackupError, match="the copy failed its check: it has 0 tables"):
        make_backup(data_dir / "bot.db")
    assert not list((data_dir / "backups").glob("*"))


@pytest.mark.parametrize(
    ("command", "instead"),
    [
        (["backup"], "pg_dump"),
        (["restore", "old.db"], "pg_restore"),
        (["check"], "PostgreSQL's own tools"),
        (["vacuum"], "PostgreSQL's own tools"),
        (["prune", "--older-than", "30"], "PostgreSQL's own tools"),
        (["export", "--guild", str(GUILD)], "PostgreSQL's own tools"),
    ],
)
def test_commands_for_sqlites_file_refuse_when_the_bot_uses_postgresql(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    instead: str,
) -> None:
    asyncio.run(_fresh(data_dir))  # left over from before the move to PostgreSQL
    before = (data_dir / "bot.db").read_bytes()
    monkeypatch.setenv("DATABASE_URL", "postgresql://gembot:hunter2@127.0.0.1:5432/gembot")
    assert run(data_dir, *command) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(
        f"error: the bot uses PostgreSQL (DATABASE_URL); {command[0]} works on SQLite's file only"
    )
    assert instead in captured.err and "hunter2" not in captured.err
    assert (data_dir / "bot.db").read_bytes() == before
    assert not (data_dir / "backups").exists()


async def test_paths_written_with_a_tilde_are_under_home_as_the_bot_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data-dir=~/gembot` (no shell expands a ~ after `=`) names the directory the bot
    uses with DATA_DIR=~/gembot, not a directory called `~` in the working directory."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    db = await open_db(home / "gembot")
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "hello")])
    await db.close()

    def cli(*args: str) -> int:
        return main(["--data-dir=~/gembot", *args])

    assert await asyncio.to_thread(cli, "backup", "~/copy.db") == 0
    assert (home / "copy.db").is_file()
    assert await asyncio.to_thread(cli, "restore", "~/copy.db") == 0
    assert await asyncio.to_thread(cli, "export", "--guild", str(GUILD), "--output=~/g.jsonl") == 0
    assert "hello" in (home / "g.jsonl").read_text(encoding="utf-8")
    assert list(work.iterdir()) == []


async def test_export_never_upgrades_the_database_under_a_running_bot(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The code was updated but the bot not restarted yet: exporting must not apply the
    new migrations to the database the older bot still runs on."""
    older = tmp_path / "older-migrations"
    older.mkdir()
    *kept, _newest = load_migrations(MIGRATIONS_DIR / "sqlite")
    for _, path in kept:
        shutil.copy(path, older / path.name)
    db = SqliteDatabase(data_dir / "bot.db")
    await db.connect(older)
    await db.execute("INSERT INTO guild_settings (guild_id, prefix) VALUES (?, '?')", (GUILD,))
    await db.close()
    database = data_dir / "bot.db"
    out = tmp_path / "export.jsonl"
    out.write_text("an earlier export\n", encoding="utf-8")

    with InstanceLock(data_dir):  # what the running bot holds
        assert await arun(data_dir, "export", "--guild", str(GUILD), "--output", str(out)) == 3
        assert schema_version(database) == len(kept)
    assert out.read_text(encoding="utf-8") == "an earlier export\n"  # not emptied either
    assert capsys.readouterr().err == (
        f"the bot is running on {data_dir}; its database is at schema version {len(kept)},"
        f" older than this code's ({len(kept) + 1}): export with the code the bot runs, or"
        " restart the bot on this code first (it upgrades the database)\n"
    )

    assert await arun(data_dir, "export", "--guild", str(GUILD), "--output", str(out)) == 0
    assert schema_version(database) == len(kept) + 1  # the bot is stopped: upgraded
    assert '"prefix": "?"' in out.read_text(encoding="utf-8")


async def test_an_export_onto_the_database_itself_is_refused_and_changes_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await open_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "kept")])
    await db.close()
    database = data_dir / "bot.db"
    for target in (database, Path(f"{database}-wal")):
        assert await arun(data_dir, "export", "--guild", str(GUILD), "--output", str(target)) == 1
        assert capsys.readouterr().err == (
            f"error: {target} is the database itself; give another file to write\n"
        )
    assert rows(database, "SELECT content FROM ai_messages") == [("kept",)]
