"""Database backups: consistent copies, checks, restore and rotation of DATA_DIR/backups/.

Copies use SQLite's online backup API in steps of `STEP_PAGES` pages, inside one read
transaction, so a copy taken while the bot writes is one consistent snapshot (WAL lets
the bot go on writing meanwhile) and holds every transaction committed before it began;
a `stop` event set meanwhile ends it after the current step, leaving no partial file.
Every function here blocks: call them through `asyncio.to_thread` from async code.
`BackupSchedule` says when the next scheduled backup is due.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from utils.db import MIGRATIONS_DIR, load_migrations

BACKUP_DIR = "backups"
_BACKUP_NAME = re.compile(r"^bot-(\d{8}-\d{6})(?:-(\d+))?\.db$")  # what rotation may delete
_PARTIAL_NAME = re.compile(r"^\.(bot|manual)-\d{8}-\d{6}(-\d+)?\.db\.tmp$")  # a copy being made
# A partial copy untouched this long was left by a killed process (kill -9, the OOM
# killer, a power cut); one being written is younger. Each is as big as the database.
LEFTOVER_AGE = 3600.0
_COMPANIONS = ("", "-wal", "-shm", "-journal")  # a database file and SQLite's files beside it
# Pages copied per step: 4 MiB at SQLite's default page size, a few milliseconds of work,
# which is as long as a stop waits (a thread cannot be interrupted otherwise).
STEP_PAGES = 1024
CHECK_STEP = 100_000  # SQLite's instructions between two looks at the stop of a check


class BackupError(Exception):
    """A backup could not be made, checked or restored; the message says why."""


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    # as_uri() percent-encodes the path: a bare "#", "?" or "%" in a URI would name
    # another file (which SQLite then creates, empty, without mode=ro).
    return contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))


def check_database(path: Path, stop: threading.Event | None = None) -> list[str]:
    """Problems PRAGMA integrity_check and foreign_key_check find (empty: healthy);
    BackupError once `stop` is set (the check of a large database takes seconds)."""
    if not path.is_file():
        raise BackupError(f"no database at {path}")
    try:
        with _read_only(path) as conn:
            if stop is not None:  # SQLite asks between steps of its work, and stops on True
                conn.set_progress_handler(stop.is_set, CHECK_STEP)
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if problems == ["ok"]:
                problems = []
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
                problems.append(f"{table} row {rowid}: no matching row in {parent}")
    except sqlite3.DatabaseError as error:
        if stop is not None and stop.is_set():
            raise BackupError(f"the check of {path} was stopped") from None
        return [f"not a usable SQLite database ({error})"]
    return problems


def schema_version(path: Path) -> int:
    with _read_only(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _shape(path: Path) -> tuple[int, int]:
    """The number of tables and the schema version: a copy has its source's."""
    try:
        with _read_only(path) as conn:
            tables = conn.execute("PRAGMA main.table_list").fetchall()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as error:
        raise BackupError(f"could not read {path}: {error}") from error
    return sum(not row[1].startswith("sqlite_") for row in tables), int(version)


def copy_database(source: Path, target: Path, stop: threading.Event | None = None) -> Path:
    """Copy a live database to `target` (a single file, not in WAL mode), atomically;
    BackupError once `stop` is set."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")

    def between_steps(status: int, remaining: int, total: int) -> None:
        if stop is not None and stop.is_set():
            raise BackupError(f"the copy of {source} was stopped")

    try:
        with (
            _read_only(source) as src,
            contextlib.closing(sqlite3.connect(tmp)) as dst,
        ):
            # Every step reads the snapshot of this transaction: the bot's writes
            # meanwhile neither enter the copy nor make SQLite start it over.
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst, pages=STEP_PAGES, progress=between_steps)
            dst.execute("PRAGMA journal_mode=DELETE")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except sqlite3.Error as error:
        raise BackupError(f"could not copy {source}: {error}") from error
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _stamp() -> str:
    """The wall time as backup names carry it."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def timestamped_path(directory: Path, prefix: str = "bot") -> Path:
    """directory/<prefix>-YYYYMMDD-HHMMSS.db (UTC), with a suffix if that name is taken."""
    stamp = _stamp()
    path = directory / f"{prefix}-{stamp}.db"
    number = 1
    while path.exists():
        path = directory / f"{prefix}-{stamp}-{number}.db"
        number += 1
    return path


def is_database_file(path: Path, database: Path) -> bool:
    """Whether writing `path` would overwrite `database` or one of SQLite's files beside it."""
    return path.resolve() in {Path(f"{database.resolve()}{suffix}") for suffix in _COMPANIONS}


def make_backup(
    database: Path,
    target: Path | None = None,
    *,
    stop: threading.Event | None = None,
    prefix: str = "bot",
) -> Path:
    """Back `database` up to `target` (a file, or a directory for a new timestamped file
    named `prefix`-<time>.db; default: its backups/ directory) and check the copy, against
    `database` too; returns its path. Setting `stop` ends the copy between two steps
    (BackupError). Only the names of the scheduled backups (`prefix` "bot") are rotated."""
    if target is None or target.is_dir():
        target = timestamped_path(target or database.parent / BACKUP_DIR, prefix)
    # `backup data/bot.db` read as "back this file up" would replace the live database
    # (or its write-ahead log) under the running bot.
    if is_database_file(target, database):
        raise BackupError(f"{target} is the database itself; give another file or a directory")
    copy_database(database, target, stop)
    try:
        problems = check_database(target, stop)
    except BackupError:
        target.unlink(missing_ok=True)  # a copy not checked is no backup
        raise
    if not problems and (copied := _shape(target)) != (source := _shape(database)):
        problems = [
            f"it has {copied[0]} tables at schema version {copied[1]}, "
            f"{database} has {source[0]} at {source[1]}"
        ]
    if problems:
        target.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its check: {problems[0]}")
    return target


def rotate_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled-style backups, and the partial copies
    of backups a killed process left; returns what went. Files named otherwise (copies
    people made by hand) are never touched.

    Names carry the wall time of their making: one named in the future was made while
    the clock ran ahead, before it was set back, so it counts as older than the rest
    (else each backup made since the clock was set back would be the first to go).
    Backups of one second follow their time by number: bot-<time>.db, then -1, -2 ... -10."""
    now = _stamp()
    named = [(p, m) for p in directory.glob("bot-*.db") if (m := _BACKUP_NAME.match(p.name))]
    named.sort(key=lambda each: (each[1][1] <= now, each[1][1], int(each[1][2] or 0)))
    old = [path for path, _ in named[: max(len(named) - keep, 0)]]
    cutoff = time.time() - LEFTOVER_AGE
    for path in directory.glob(".*.db.tmp"):
        with contextlib.suppress(FileNotFoundError):  # another rotation took it
            if _PARTIAL_NAME.match(path.name) and path.stat().st_mtime < cutoff:
                old.append(path)
    for path in old:
        path.unlink(missing_ok=True)
    return old


def newest_backup_age(directory: Path) -> float | None:
    """Seconds since the newest backup in `directory` was written, or None."""
    times = [p.stat().st_mtime for p in directory.glob("bot-*.db") if _BACKUP_NAME.match(p.name)]
    return time.time() - max(times) if times else None


class BackupSchedule:
    """When the next scheduled backup is due, every `interval` seconds of `clock`.

    The interval runs on a monotonic clock: the wall clock set back (NTP fixing a wrong
    clock, say) no longer holds backups back until it catches up with the newest one's
    time, nor does setting it forward take one early. Only where the schedule starts
    does it read wall time, the age of the newest backup file, so that a restart neither
    skips nor repeats a backup; a backup dated in the future counts as just made.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._due = clock()

    def resume(self, newest_age: float | None) -> None:
        """Carry on from the newest backup, `newest_age` seconds old (None: there is none)."""
        wait = 0.0 if newest_age is None else self.interval - max(newest_age, 0.0)
        self._due = self.clock() + max(wait, 0.0)

    def wait(self) -> float:
        """Seconds until the next backup is due; 0 when it is."""
        return max(self._due - self.clock(), 0.0)

    def done(self) -> None:
        """A backup was made: the next one is an interval away."""
        self._due = self.clock() + self.interval

    def retry_in(self, seconds: float) -> None:
        """A backup failed: try again in `seconds`."""
        self._due = self.clock() + seconds


def restore_backup(backup: Path, database: Path, memory_dir: Path) -> Path | None:
    """Replace `database` with a checked copy of `backup`. The replaced database (with
    its WAL) is kept in backups/ as replaced-<time>.db; returns that path, if any.

    The memory index files under `memory_dir` are removed: they describe the replaced
    database, and the bot rebuilds them from the restored one on first use.
    Call only while nothing else has the database open (hold the instance lock).
    """
    if problems := check_database(backup):
        raise BackupError(f"{backup} failed its check: {problems[0]}")
    known = len(load_migrations(MIGRATIONS_DIR / "sqlite"))
    if (version := schema_version(backup)) == 0:  # the bot's first start migrates its own
        raise BackupError(f"{backup} is not a backup of the bot's database (empty, or another's)")
    if version > known:
        raise BackupError(
            f"{backup} has schema version {version}; this code knows up to {known} (upgrade first)"
        )
    staged = database.with_name(f".{database.name}.restoring")
    copy_database(backup, staged)
    aside = None
    try:
        if database.exists():
            aside = timestamped_path(database.parent / BACKUP_DIR, "replaced")
            aside.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("-wal", "-shm", ""):  # the WAL travels with its database
                companion = Path(f"{database}{suffix}")
                if companion.exists():
                    os.replace(companion, Path(f"{aside}{suffix}"))
        os.replace(staged, database)
    finally:
        staged.unlink(missing_ok=True)
    for index_file in memory_dir.glob("*.faiss"):
        index_file.unlink(missing_ok=True)
    return aside
