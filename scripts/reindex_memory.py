"""Rebuild the long-term memory indexes from the database, re-embedding after a model change.

    .venv/bin/python scripts/reindex_memory.py                  # every scope
    .venv/bin/python scripts/reindex_memory.py --scope guild:123   # one server (or dm:<user id>)
    .venv/bin/python scripts/reindex_memory.py --data-dir data/0-3  # one shard process's

Reads DATA_DIR (or --data-dir), DATABASE_URL and EMBEDDING_MODEL like the bot does
(environment, then `.env`). Memories embedded by another model are re-embedded first;
then each scope's index file under DATA_DIR/memory/ is built from the vectors in the
database and written atomically, and files of scopes with no memories left are removed.
It holds DATA_DIR/bot.lock while it works and refuses (exit status 3) while the bot runs
there: a running bot keeps its indexes in memory and would save them over these. Every scope
of the database is built, whatever SHARD_IDS says: with several shard processes, give
`--scope` (a process builds a missing index of its own on first use) and the process's
own DATA_DIR with --data-dir (gembot@0-3 runs on data/0-3); a DATA_DIR holding the
directories of shard processes is refused without it, as none of them reads its indexes.

Exit status: 0 done, 1 the database or the disk failed (one line says how), 2 bad usage
or setting, 3 the bot is running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import ConfigError, Settings, load_settings
from utils.db import DB_ERRORS, DatabaseUnavailable, open_database
from utils.instance_lock import LOCK_NAME, AlreadyLocked, InstanceLock
from utils.memory.records import Scope
from utils.memory.service import MemoryService


class _Problems(logging.Handler):
    """What the memory service logs and carries on after (an index file it could not
    write, say): one line each instead of a traceback; an error makes the script fail."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.errors += record.levelno >= logging.ERROR
        why = f": {record.exc_info[1]}" if record.exc_info else ""
        print(f"{record.levelname.lower()}: {record.getMessage()}{why}", file=sys.stderr)


async def reindex(settings: Settings, scope: Scope | None) -> None:
    url = settings.database_url
    db = open_database(
        url.get_secret_value() if url else "",
        settings.database_path,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
    )
    memory = MemoryService.from_settings(settings, db)  # loads nothing yet
    try:
        await db.connect()
        started = time.perf_counter()
        reembedded = await memory.upkeep.reembed_stale()
        if reembedded:
            print(f"re-embedded {reembedded:,} memories with {memory.embedder.name}")
        if scope is None:
            built = await memory.upkeep.rebuild_all()
        else:
            built = {scope: len(await memory.indexes.rebuild(scope))}
        for each, vectors in built.items():
            print(f"{each.key}: {vectors:,} vectors")
        total = sum(built.values())
        elapsed = time.perf_counter() - started
        print(f"rebuilt {len(built)} indexes ({total:,} vectors) in {elapsed:.1f} s")
    finally:
        await memory.close()
        await db.close()


def _scope(value: str) -> Scope:
    """A scope whose id is one as Discord gives them: the database stores 64-bit integers."""
    try:
        scope = Scope.parse(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "SCOPE must be guild:<server id> or dm:<user id>"
        ) from None
    if not 0 < scope.id < 2**63:
        raise argparse.ArgumentTypeError(f"{scope.kind}:<id> needs an id like 123456789012345678")
    return scope


def _path(value: str) -> Path:
    """``~/gembot`` as the bot reads DATA_DIR: no shell expands the ~ of ``--data-dir=~/x``."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~name of no user, or no home directory to be found
        raise argparse.ArgumentTypeError(f"{value}: its ~ names no home directory here") from None


def _instances(data_dir: Path) -> list[str]:
    """The directories in `data_dir` that shard processes run on (data/0-3 of gembot@0-3)."""
    try:
        return sorted(d.name for d in data_dir.iterdir() if (d / LOCK_NAME).is_file())
    except OSError:  # no such directory yet, say: nothing runs there
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--scope", type=_scope, help="guild:<id> or dm:<user id>")
    parser.add_argument("--data-dir", type=_path, help="default: DATA_DIR, else ./data")
    args = parser.parse_args()
    chosen = {} if args.data_dir is None else {"data_dir": args.data_dir}
    try:
        # The bot's token is not needed here; a placeholder keeps Settings from asking.
        settings = load_settings(discord_token=SecretStr("not-used-by-this-script"), **chosen)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.data_dir is None and (instances := _instances(settings.data_dir)):
        print(
            f"{settings.data_dir} holds the data directories of shard processes "
            f"({', '.join(instances)}), which read their indexes there: give --data-dir "
            f"{settings.data_dir / instances[0]} (and --scope) for the one to rebuild",
            file=sys.stderr,
        )
        return 2
    if settings.database_url is None and not settings.database_path.exists():
        print(f"no database at {settings.database_path}; nothing to index", file=sys.stderr)
        return 1
    problems = _Problems()
    logging.getLogger().addHandler(problems)
    try:
        with InstanceLock(settings.data_dir):
            asyncio.run(reindex(settings, args.scope))
    except AlreadyLocked:
        print(f"the bot is running on {settings.data_dir}; stop it first", file=sys.stderr)
        return 3
    except DatabaseUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    except DB_ERRORS as error:  # a damaged database or a full disk, say: no traceback
        print(f"error: could not rebuild the memory indexes: {error}", file=sys.stderr)
        return 1
    return 1 if problems.errors else 0


if __name__ == "__main__":
    sys.exit(main())
