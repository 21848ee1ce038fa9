"""The PostgreSQL backend itself: `?` placeholders, and one clear line (never the password)
when the server cannot be used, from the backend and from `python bot.py`."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config import Settings
from tests.fakes.discord_server import FakeDiscord
from utils.db_postgres import DatabaseUnavailable, PostgresDatabase, to_postgres

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-not-for-logs"


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_placeholders_are_numbered_outside_quotes() -> None:
    assert (
        to_postgres("SELECT ?, '?', 'it''s ?' FROM t WHERE a = ? AND b = ?")
        == "SELECT $1, '?', 'it''s ?' FROM t WHERE a = $2 AND b = $3"
    )


async def unavailable(url: str) -> str:
    database = PostgresDatabase(url, timeout=10)
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.connect()
    finally:
        await database.close()
    return str(raised.value)


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    port = closed_port()
    message = await unavailable(f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/gembot")
    assert message == f"cannot use PostgreSQL at bot@127.0.0.1:{port}/gembot: connection refused"


async def test_a_refused_login_and_a_missing_database_say_which(postgres_server: str) -> None:
    server = urlsplit(postgres_server)
    where = f"{server.hostname}:{server.port}"
    refused = await unavailable(f"postgresql://nobody:{PASSWORD}@{where}/postgres")
    assert refused == (
        f"cannot use PostgreSQL at nobody@{where}/postgres: the user name or password was refused"
    )
    missing = await unavailable(f"{postgres_server.rsplit('/', 1)[0]}/no_such_database")
    assert missing.endswith(f"{where}/no_such_database: the database does not exist")


@pytest.mark.slow
async def test_the_bot_exits_with_one_clear_line_when_postgresql_is_unreachable(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    port = closed_port()
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "DISCORD_TOKEN": "test-token-for-subprocess",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/gembot",
        "FAKE_DISCORD_URL": discord_fake.url,
        "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
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
    assert process.returncode == 1, log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert errors[0].endswith(
        f"cannot use PostgreSQL at bot@127.0.0.1:{port}/gembot: connection refused"
    )
    assert "Traceback" not in log
    assert PASSWORD not in log + (tmp_path / "data" / "logs" / "bot.log").read_text()
