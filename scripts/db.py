"""Database maintenance: check, back up, restore, vacuum, prune and export the bot's data.

    python -m scripts.db check                          # integrity and foreign keys
    python -m scripts.db backup [PATH]                  # default: DATA_DIR/backups/manual-<time>.db
    python -m scripts.db restore PATH                   # the bot must be stopped
    python -m scripts.db vacuum                         # the bot must be stopped
    python -m scripts.db prune --older-than DAYS [--include-facts]   # the bot must be stopped
    python -m scripts.db export --guild ID [--output FILE]           # JSON lines
    python -m scripts.db migrate [--to postgresql://...] [--replace]  # into PostgreSQL; bot stopped

DATA_DIR comes from --data-dir, else the environment or `.env` as for the bot, else
`data`; DISCORD_TOKEN is not needed. check, backup and export are safe while the bot
runs (export upgrades a database older than this code, so then it needs the bot stopped
too). restore, vacuum, prune and migrate hold DATA_DIR/bot.lock while they work: they
refuse to run beside the bot, and the bot cannot start until they are done (a migration
would miss what the bot writes meanwhile). migrate copies into --to, else DATABASE_URL
(which keeps the password off the command line), and may be run again: it replaces what
an earlier run copied, but not what the bot wrote in PostgreSQL since (rows newer than
SQLite's newest, a table changed since the last copy) unless given --replace. With
DATABASE_URL set the bot uses PostgreSQL, so every other command, which works on
SQLite's file, refuses.

Exit status: 0 done, 1 problems found or the work failed, 2 bad usage, 3 the bot is running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cogs.ai.store import ChatStore
from cogs.ai.tools.audit import ToolAudit
from cogs.music.library_store import LibraryStore
from cogs.music.settings import MusicSettingsStore
from cogs.music.store import MusicStore
from cogs.roleplay.characters import CharacterStore
from cogs.roleplay.scenes import SceneStore
from config import ConfigError, Settings, load_settings
from scripts.db_migrate import MigrationError, migrate
from utils.backup import (
    BackupError,
    check_database,
    is_database_file,
    make_backup,
    restore_backup,
    schema_version,
)
from utils.db import MIGRATIONS_DIR, DatabaseUnavailable, load_migrations
from utils.db_postgres_sessions import describe
from utils.db_sqlite import SqliteDatabase
from utils.guild_settings import GuildSettings
from utils.instance_lock import AlreadyLocked, InstanceLock
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Scope
from utils.memory.store import MemoryStore

OK, FAILED, USAGE, RUNNING = 0, 1, 2, 3
DAY = 86_400.0
POSTGRES_TOOLS = {"backup": "pg_dump", "restore": "pg_restore"}  # what to use instead


class Refused(Exception):
    """The bot runs on this data directory; the message, if any, says why that stops the
    command (else: it needs the bot stopped)."""


@contextlib.contextmanager
def bot_stopped(data_dir: Path) -> Iterator[None]:
    """Hold the bot's lock for the block, or raise Refused if the bot holds it."""
    try:
        with InstanceLock(data_dir):
            yield
    except AlreadyLocked:
        raise Refused from None


def _mib(path: Path) -> str:
    size = sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )
    return f"{size / 2**20:.1f} MiB"


def check(database: Path) -> int:
    problems = check_database(database)
    for problem in problems[:20]:
        print(f"problem: {problem}")
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more")
    if problems:
        print(f"{database}: {len(problems)} problems found")
        return FAILED
    print(f"{database}: ok (integrity and foreign keys)")
    return OK


def backup(database: Path, target: Path | None) -> int:
    # Named apart from the scheduled backups: their rotation keeps only the newest few.
    path = make_backup(database, target, prefix="manual")
    print(f"backed up to {path} ({_mib(path)})")
    return OK


def restore(data_dir: Path, database: Path, source: Path) -> int:
    with bot_stopped(data_dir):
        aside = restore_backup(source, database, data_dir / "memory")
    print(f"restored {database} from {source}")
    if aside is not None:
        print(f"the replaced database is kept at {aside}")
    print("memory indexes will be rebuilt from the restored database when the bot starts")
    return OK


def vacuum(data_dir: Path, database: Path) -> int:
    with bot_stopped(data_dir):
        before = _mib(database)
        with contextlib.closing(sqlite3.connect(database)) as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"vacuumed {database}: {before} -> {_mib(database)}")
    return OK


async def prune(data_dir: Path, database: Path, days: float, include_facts: bool) -> int:
    """Delete old history and memories. No bot holds a copy of them meanwhile, so none
    needs telling (`Database.notify`): this works on SQLite's file only, which one bot
    process uses at a time, and under its lock; PostgreSQL is refused (see `main`)."""
    with bot_stopped(data_dir):
        cutoff = time.time() - days * DAY
        db = SqliteDatabase(database)
        try:
            await db.connect()
            messages = await ChatStore(db).data.prune_before(cutoff)
            memories = await MemoryDeletions(db).prune_before(cutoff, include_user=include_facts)
        finally:
            await db.close()
        # The indexes of the scopes that lost memories are rebuilt from SQLite on first use.
        for scope in {scope for scope, _ in memories}:
            (data_dir / "memory" / scope.filename).unlink(missing_ok=True)
    kept = "" if include_facts else " (facts people added themselves kept)"
    print(f"pruned {messages} messages and {len(memories)} memories older than {days:g} days{kept}")
    return OK


async def export(data_dir: Path, database: Path, guild_id: int, output: Path | None) -> int:
    """Write a guild's rows to `output` (standard output if None), which is opened only
    once they are read: a refused or failed export leaves an earlier one as it was."""
    with contextlib.ExitStack() as held:
        # Opening a database older than this code upgrades it: not under a running bot,
        # whose code (older, not restarted since an update) would then misread it.
        known = len(load_migrations(MIGRATIONS_DIR / "sqlite"))
        if (version := schema_version(database)) < known:
            try:
                held.enter_context(bot_stopped(data_dir))
            except Refused:
                raise Refused(
                    f"its database is at schema version {version}, older than this code's "
                    f"({known}): export with the code the bot runs, or restart the bot on this"
                    " code first (it upgrades the database)"
                ) from None
        rows = await _guild_rows(database, guild_id)
    lines = [
        json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n" for table, row in rows
    ]
    if output is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    else:
        with output.open("w", encoding="utf-8") as out:
            out.writelines(lines)
    print(f"exported {len(rows)} rows of guild {guild_id}", file=sys.stderr)
    return OK


async def _guild_rows(database: Path, guild_id: int) -> list[tuple[str, dict[str, Any]]]:
    db = SqliteDatabase(database)
    try:
        await db.connect()
        rows: list[tuple[str, dict[str, Any]]] = [
            ("guild_settings", row)
            for row in await GuildSettings(db, default_prefix="").export_guild(guild_id)
        ]
        rows += await ChatStore(db).data.export_guild(guild_id)
        rows += [
            ("memories", row)
            for row in await MemoryStore(db).export_scope(Scope("guild", guild_id))
        ]
        rows += await MusicStore(db).export_guild(guild_id)
        rows += await MusicSettingsStore(db, keep=lambda _: False).export_guild(guild_id)
        rows += await LibraryStore(db).export_guild(guild_id)
        rows += [("ai_tool_actions", row) for row in await ToolAudit(db).export_guild(guild_id)]
        rows += await CharacterStore(db, limit=0).export_guild(guild_id)  # reads only
        rows += await SceneStore(db).export_guild(guild_id)
    finally:
        await db.close()
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.db", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--data-dir", type=_path, help="default: DATA_DIR, else ./data")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="integrity and foreign key checks")
    backup_cmd = commands.add_parser("backup", help="copy the database, safe while the bot runs")
    backup_cmd.add_argument(
        "path", nargs="?", type=_backup_target, help="default: DATA_DIR/backups/"
    )
    restore_cmd = commands.add_parser("restore", help="replace the database with a backup")
    restore_cmd.add_argument("path", type=_path)
    commands.add_parser("vacuum", help="rebuild the database file to reclaim space")
    prune_cmd = commands.add_parser("prune", help="delete old history and memories")
    prune_cmd.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    prune_cmd.add_argument(
        "--include-facts", action="store_true", help="also facts people added with /memory add"
    )
    export_cmd = commands.add_parser("export", help="a guild's data as JSON lines")
    export_cmd.add_argument("--guild", type=_guild_id, required=True, metavar="ID")
    export_cmd.add_argument("--output", type=_path, help="default: standard output")
    migrate_cmd = commands.add_parser("migrate", help="copy every table into PostgreSQL")
    migrate_cmd.add_argument(
        "--to", type=_postgres_url, metavar="URL", help="default: DATABASE_URL"
    )
    migrate_cmd.add_argument(
        "--replace",
        action="store_true",
        help="also when PostgreSQL holds rows newer than SQLite's (they are lost)",
    )
    return parser


def _path(value: str) -> Path:
    """``~/gembot`` as the bot reads DATA_DIR: no shell expands the ~ of ``--data-dir=~/x``,
    and a directory named ``~`` in the working directory would be restored into."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~name of no user, or no home directory to be found
        raise argparse.ArgumentTypeError(f"{value}: its ~ names no home directory here") from None


def _backup_target(value: str) -> Path:
    """A path ending in a separator (``newdir/``) names a directory: one that is not there
    is refused, as the backup would be written to a file of that name."""
    path = _path(value)
    if value.endswith(("/", os.sep)) and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no such directory; create it first")
    return path


def _postgres_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError("the URL must start with postgresql://")
    return value


def _unusable(url: str) -> str | None:
    """Why migrate cannot copy into `url`, in words that quote no part of the password."""
    if not url:
        return "give --to URL, or set DATABASE_URL"
    try:
        describe(url)
    except DatabaseUnavailable as error:
        return str(error)
    return None


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("DAYS must be a number") from None
    if not 0 < days < 100_000:
        raise argparse.ArgumentTypeError("DAYS must be more than 0 and less than 100000")
    return days


def _guild_id(value: str) -> int:
    """A server id as Discord gives them: the database stores them as 64-bit integers."""
    try:
        guild_id = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("ID must be a server id (a number)") from None
    if not 0 < guild_id < 2**63:
        raise argparse.ArgumentTypeError("ID must be a server id, like 123456789012345678")
    return guild_id


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # The bot's token is not needed here; a placeholder keeps Settings from asking.
        settings = load_settings(discord_token=SecretStr("not-used-by-this-script"))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return USAGE
    data_dir = args.data_dir or settings.data_dir
    database = Settings.model_construct(data_dir=data_dir).database_path
    database_url = settings.database_url.get_secret_value() if settings.database_url else ""
    if database_url and args.command != "migrate":
        instead = POSTGRES_TOOLS.get(args.command, "PostgreSQL's own tools")
        print(
            f"error: the bot uses PostgreSQL (DATABASE_URL); {args.command} works on "
            f"SQLite's file only: use {instead}",
            file=sys.stderr,
        )
        return USAGE
    if args.command == "migrate" and (problem := _unusable(args.to or database_url)):
        print(f"error: {problem}", file=sys.stderr)
        return USAGE
    try:
        if args.command != "restore" and not database.is_file():
            raise BackupError(f"no database at {database}")
        match args.command:
            case "check":
                return check(database)
            case "backup":
                return backup(database, args.path)
            case "restore":
                return restore(data_dir, database, args.path)
            case "vacuum":
                return vacuum(data_dir, database)
            case "prune":
                return asyncio.run(prune(data_dir, database, args.older_than, args.include_facts))
            case "export":
                if args.output is not None and is_database_file(args.output, database):
                    raise BackupError(  # writing it would destroy the database
                        f"{args.output} is the database itself; give another file to write"
                    )
                return asyncio.run(export(data_dir, database, args.guild, args.output))
            case "migrate":
                with bot_stopped(data_dir):
                    copied = migrate(database, args.to or database_url, replace=args.replace)
                    return OK if asyncio.run(copied) else FAILED
    except Refused as refused:
        why = str(refused) or "stop it first"
        print(f"the bot is running on {data_dir}; {why}", file=sys.stderr)
        return RUNNING
    except (BackupError, DatabaseUnavailable, MigrationError, OSError, sqlite3.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILED
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
