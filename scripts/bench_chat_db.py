"""Where the runs of scripts/bench_chat.py keep their data when the database is PostgreSQL
(`--database scratch` or a URL); with SQLite each run's data directory holds it.

Every run starts from the same seeded data. The seeded SQLite database is moved into a
template database with `scripts/db.py migrate`, as a user moving over would, and
scripts/bench_chat.py starts a bot on it once so that it fills PostgreSQL's keyword rows
(what any bot does first after such a move). Each run then gets a copy of the template
(`CREATE DATABASE ... TEMPLATE`): no run sees another's writes.

`scratch` is a throwaway cluster on this machine (scripts/pg_scratch.sh), removed at the
end. It runs on the bot's core when the bot has one: the database is on the bot's
machine, as on a self-hoster's server, while the fakes stand for Discord's and Google's.
As a test cluster it runs with fsync and synchronous_commit off: a commit waits for no
disk, as with the bot's SQLite (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from utils.db_sqlite import SqliteDatabase

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "gembot_bench_template"
TIMEOUT = 120  # seconds for one statement (a template copy of a large database takes a while)


class Postgres:
    """A PostgreSQL server the benchmark creates its databases on."""

    def __init__(self, server: str, scratch: Path | None = None) -> None:
        self.server = server
        """The URL given (or the scratch cluster's): where CREATE DATABASE is run."""
        self._scratch = scratch
        self._runs = itertools.count()

    @classmethod
    async def start(cls, spec: str, cpus: set[int]) -> Postgres:
        """The server at the URL `spec`, or for `scratch` a cluster on `cpus` (empty: the
        benchmark's)."""
        if spec != "scratch":
            return cls(spec)
        # Not under a private temporary directory: as root, the cluster runs as `postgres`.
        scratch = Path(f"/tmp/gembot-bench-pg-{os.getpid()}")
        script = str(ROOT / "scripts" / "pg_scratch.sh")
        out = await _run("bash", script, "start", str(scratch), cpus=cpus)
        return cls(out.strip(), scratch)

    def url(self, name: str) -> str:
        """The URL of database `name` on this server."""
        return urlsplit(self.server)._replace(path=f"/{name}").geturl()

    async def make_template(self, seeded: Path) -> str:
        """Move the SQLite database of the data directory `seeded` into a new template
        database with the migration command; returns the template's URL."""
        if not (seeded / "bot.db").exists():  # nothing seeded: an empty database moves over
            empty = SqliteDatabase(seeded / "bot.db")
            await empty.connect()
            await empty.close()
        await self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await self._admin(f"CREATE DATABASE {TEMPLATE}")
        url = self.url(TEMPLATE)
        command = ["-m", "scripts.db", "--data-dir", str(seeded), "migrate", "--to", url]
        out = await _run(sys.executable, *command)
        print(out.strip().splitlines()[-1], flush=True)  # copied N rows ... every count matches
        return url

    async def fresh(self) -> str:
        """A new database copied from the template, for one run; returns its URL."""
        name = f"gembot_bench_{next(self._runs)}"
        await self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    async def drop(self, url: str) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")

    async def close(self) -> None:
        """Drop the template; stop and remove a scratch cluster."""
        if self._scratch is not None:
            await _run("bash", str(ROOT / "scripts" / "pg_scratch.sh"), "stop", str(self._scratch))
        else:
            await self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.server, timeout=TIMEOUT)
        try:
            await conn.execute(sql, timeout=TIMEOUT)
        finally:
            await conn.close(timeout=TIMEOUT)


async def _run(*command: str, cpus: set[int] | None = None) -> str:
    """Run a command from the repository (on `cpus`, when given); its output, or
    RuntimeError with its errors."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {err.decode().strip()}")
    return out.decode()
