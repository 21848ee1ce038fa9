"""Backups: stopped part-way (the shutdown waits for nothing long, no file is left), made
by hand (never rotated), and restores of files that are no backup."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import utils.backup
from scripts.db import main
from utils.backup import STEP_PAGES, BackupError, make_backup, restore_backup, rotate_backups


def test_a_stop_during_the_check_of_a_backup_ends_it_at_once_leaving_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check of a copy (SQLite's integrity check: ~10 s for a database of a GB) ran
    to its end after a SIGTERM, and the process waited for it before it could exit."""
    database = tmp_path / "bot.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE ballast (data BLOB)")
        conn.execute("CREATE INDEX ballast_data ON ballast (data)")
        # Rows enough that the check takes several of CHECK_STEP's steps.
        conn.executemany("INSERT INTO ballast VALUES (randomblob(16))", [()] * 40 * STEP_PAGES)
    conn.close()
    stop = threading.Event()
    real_check = utils.backup.check_database
    checked: list[list[str]] = []

    def check_stopped_as_it_starts(path: Path, stopping: threading.Event | None) -> list[str]:
        stop.set()  # SIGTERM, once the copy is made
        checked.append(real_check(path, stopping))
        return checked[-1]

    monkeypatch.setattr("utils.backup.check_database", check_stopped_as_it_starts)
    with pytest.raises(BackupError, match="was stopped"):
        make_backup(database, stop=stop)
    assert checked == [], "the check did not run to its end"
    assert list((tmp_path / "backups").iterdir()) == []


@pytest.mark.parametrize("made_by", ["nothing: an empty file", "another program"])
def test_restoring_a_file_that_is_no_database_of_the_bot_is_refused(
    tmp_path: Path, made_by: str
) -> None:
    """An empty file (a copy that failed half-way) or another program's SQLite file is
    a sound database: it was put in place, and the bot started afresh on it, empty."""
    database = tmp_path / "data" / "bot.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE guild_settings (guild_id INTEGER)")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = database.read_bytes()
    wrong = tmp_path / "wrong.db"
    wrong.touch()
    if made_by == "another program":
        with sqlite3.connect(wrong) as conn:
            conn.execute("CREATE TABLE moz_cookies (id INTEGER PRIMARY KEY, value TEXT)")
        conn.close()
    with pytest.raises(BackupError, match="is not a backup of the bot's database"):
        restore_backup(wrong, database, tmp_path / "data" / "memory")
    assert database.read_bytes() == before
    assert not (tmp_path / "data" / "backups").exists()


def test_a_backup_made_by_hand_outlives_the_rotation_of_the_scheduled_ones(
    tmp_path: Path,
) -> None:
    """`python -m scripts.db backup` (say before an upgrade) was named as the scheduled
    ones, so their rotation deleted it BACKUP_KEEP backups later, unlike what .env.example
    promises of copies made by hand."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "bot.db") as conn:
        conn.execute("CREATE TABLE guild_settings (guild_id INTEGER)")
    conn.close()
    assert main(["--data-dir", str(data_dir), "backup"]) == 0
    (by_hand,) = (data_dir / "backups").iterdir()
    for _ in range(2):
        make_backup(data_dir / "bot.db")
    (rotated,) = rotate_backups(data_dir / "backups", keep=1)
    assert rotated.name.startswith("bot-")
    assert by_hand.exists() and len(list((data_dir / "backups").iterdir())) == 2


def test_rotation_removes_the_partial_copy_a_killed_backup_by_hand_left(tmp_path: Path) -> None:
    left = tmp_path / ".manual-20240101-120000.db.tmp"  # kill -9 of `scripts.db backup`
    left.write_bytes(b"x" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(left, (two_hours_ago, two_hours_ago))
    assert rotate_backups(tmp_path, keep=3) == [left]


def test_rotation_deletes_backups_of_one_second_in_the_order_they_were_made(
    tmp_path: Path,
) -> None:
    """bot-<time>-1.db is made after bot-<time>.db (and -10 after -9), but sorted by name
    before it: the rotation deleted the newer copy and kept the older."""
    names = ["bot-20240101-120000.db"] + [f"bot-20240101-120000-{n}.db" for n in (1, 2, 9, 10)]
    for name in names:
        (tmp_path / name).write_bytes(b"a backup")
    assert rotate_backups(tmp_path, keep=2) == [tmp_path / name for name in names[:3]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])
