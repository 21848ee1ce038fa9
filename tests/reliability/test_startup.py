"""Start-up as an operator sees it: stopped half-way, or unable to start.

SIGTERM while the second shard waits its turn to IDENTIFY (discord.py spaces them 5 s
apart), or while setup_hook loads the cogs, ends the bot at once and cleanly. A health
port in use, a damaged database or an unreachable Discord stop it with one line and exit
code 1, as systemd's journal shows them; a token Discord rejects, a bad setting, with 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot import Bot, run
from config import Settings
from tests.fakes.discord_server import FakeDiscord, FakeGuild
from tests.fakes.local_http import LocalHTTPServer
from tests.reliability.conftest import TOKEN, BotProcess
from utils.db import MIGRATIONS_DIR

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EXIT_WITHIN = 10.0  # seconds
SIGTERM_COG = "tests.reliability.sigterm_cog"


@pytest.mark.shards(2)
async def test_sigterm_while_the_second_shard_waits_its_turn_exits_at_once(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    bot = await BotProcess.launch(
        discord_fake.url,
        tmp_path / "data",
        tmp_path / "bot.out",
        DISCORD_TOKEN=TOKEN,
        SHARD_COUNT="2",
        MEMORY_ENABLED="false",
    )
    try:
        await discord_fake.wait_for(
            lambda: discord_fake.identifies or bot.process.returncode is not None, timeout=60
        )
        assert bot.process.returncode is None, bot.output()
        elapsed = await bot.terminate(EXIT_WITHIN)
    finally:
        await bot.stop()
    print(f"SIGTERM while shard 1 waited: exited in {elapsed:.1f} s")
    output = bot.output()
    assert bot.process.returncode == 0, output[-3000:]
    assert discord_fake.identifies == 1, "shard 1 identified after the SIGTERM"
    assert "Traceback" not in output, output[-3000:]
    assert "Failed to connect" not in output, output[-3000:]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    "extensions",
    [
        ["cogs.admin", SIGTERM_COG, "cogs.music"],
        ["cogs.admin", "cogs.music", SIGTERM_COG],
    ],
    ids=["the cogs after it", "the slash commands"],
)
async def test_sigterm_during_setup_loads_no_more_cogs_and_exits_cleanly(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    extensions: list[str],
) -> None:
    caplog.set_level(logging.INFO)
    bot = Bot(make_settings(memory_enabled=False), extensions=extensions, guild_ready_timeout=0.1)
    try:
        async with asyncio.timeout(EXIT_WITHIN):
            await run(bot)  # SIGTERM_COG gets SIGTERM while it loads
    finally:
        await bot.close()
    after = extensions.index(SIGTERM_COG) + 1
    assert [n for n in extensions if f"loaded {n}" in caplog.text] == extensions[:after]
    assert discord_fake.identifies == 0
    assert discord_fake.commands == {}, "slash commands were synced after the SIGTERM"
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == []


@pytest.mark.backends("sqlite")
async def test_sigterm_during_an_upgrade_ends_the_migration_under_way_and_exits_cleanly(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database was closed under the migrations, and the start went on with it:
    `ValueError: no active connection` (or `database is not open`), a traceback."""
    shipped = sorted((MIGRATIONS_DIR / "sqlite").glob("*.sql"))
    upgrade = tmp_path / "migrations" / "sqlite"
    upgrade.mkdir(parents=True)
    for path in shipped:
        shutil.copy(path, upgrade)
    slow = f"{len(shipped) + 1:04d}_slow.sql"
    (upgrade / slow).write_text(
        "CREATE TABLE slow AS WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT x FROM c;"
    )
    (upgrade / f"{len(shipped) + 2:04d}_next.sql").write_text("CREATE TABLE next (x INTEGER);")
    monkeypatch.setattr("utils.db_sqlite.MIGRATIONS_DIR", upgrade.parent)

    class SigtermDuringTheUpgrade(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == f"applying migration {slow}":
                os.kill(os.getpid(), signal.SIGTERM)

    caplog.set_level(logging.INFO)
    stopper = SigtermDuringTheUpgrade()
    logging.getLogger("utils.db_sqlite").addHandler(stopper)
    settings = make_settings(memory_enabled=False)
    bot = Bot(settings, extensions=["cogs.admin"], guild_ready_timeout=0.1)
    try:
        async with asyncio.timeout(EXIT_WITHIN):
            await run(bot)
    finally:
        logging.getLogger("utils.db_sqlite").removeHandler(stopper)
        await bot.close()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == []
    assert discord_fake.identifies == 0
    assert "loaded cogs.admin" not in caplog.text
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(shipped) + 1


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


class DiscordOutage(LocalHTTPServer):
    """Discord in an outage: every request gets Cloudflare's HTML page with a 503."""

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._down)

    async def _down(self, request: web.Request) -> web.Response:
        page = "<html><body>" + "503 Service Temporarily Unavailable " * 50 + "</body></html>"
        return web.Response(status=503, text=page, content_type="text/html")


class DiscordRejectingTheToken(LocalHTTPServer):
    """Discord for a token reset or mistyped: every request is answered 401."""

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._unauthorized)

    async def _unauthorized(self, request: web.Request) -> web.Response:
        body = b'{"message": "401: Unauthorized", "code": 0}'
        return web.Response(status=401, body=body, headers={"Content-Type": "application/json"})


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused (held, so nobody takes it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line or " CRITICAL " in line]


async def exited(bot: BotProcess) -> str:
    """The output of a bot that stops by itself, once it has (fails past 60 s)."""
    try:
        await asyncio.wait_for(bot.process.wait(), 60)
    except TimeoutError:
        raise AssertionError(f"the bot did not stop:\n{bot.output()[-3000:]}") from None
    finally:
        await bot.stop()
    return bot.output()


async def refused_start(discord_url: str, data_dir: Path, status: int = 1, **env: str) -> str:
    """Start the bot on ``data_dir``; the one ERROR line it stops with (exit code
    ``status``, no traceback, no token), or the whole output if the log itself could not
    start."""
    bot = await BotProcess.launch(
        discord_url,
        data_dir,
        data_dir.parent / "bot.out",
        DISCORD_TOKEN=TOKEN,
        MEMORY_ENABLED="false",
        **env,
    )
    output = await exited(bot)
    assert bot.process.returncode == status, output
    assert "Traceback" not in output, output
    assert TOKEN not in output
    lines = error_lines(output) or output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


async def test_a_health_port_in_use_stops_the_start_with_one_line(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path, busy_port: int
) -> None:
    line = await refused_start(discord_fake.url, tmp_path / "data", HEALTH_PORT=str(busy_port))
    assert f"127.0.0.1:{busy_port}" in line
    assert "HEALTH_PORT" in line
    assert "in use" in line


async def test_a_damaged_database_stops_the_start_with_one_line(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "bot.db").write_bytes(b"this is not an SQLite database " * 200)
    line = await refused_start(discord_fake.url, data_dir)
    assert str(data_dir / "bot.db") in line
    assert "damaged" in line
    assert "scripts.db restore" in line


async def test_a_database_the_bot_cannot_open_stops_the_start_with_one_line(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    """Say an owner's mistake left DATA_DIR/bot.db unopenable (here: a directory)."""
    data_dir = tmp_path / "data"
    (data_dir / "bot.db").mkdir(parents=True)
    line = await refused_start(discord_fake.url, data_dir)
    assert f"cannot use the database {data_dir / 'bot.db'}" in line
    assert "unable to open database file" in line


async def test_a_log_directory_the_bot_cannot_write_stops_the_start_with_one_line(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "logs").write_text("a file where the bot keeps its logs\n")
    line = await refused_start(discord_fake.url, data_dir)
    assert line == f"Cannot write the log in {data_dir / 'logs'}: File exists"


async def test_a_discord_outage_stops_the_start_with_one_line(tmp_path: Path) -> None:
    async with DiscordOutage() as outage:
        line = await refused_start(f"http://127.0.0.1:{outage.port}", tmp_path / "data")
    assert line.endswith(
        "Discord failed the start (HTTP 503); try again later (discordstatus.com)"
    ), line


async def test_an_unreachable_discord_stops_the_start_with_one_line(
    tmp_path: Path, closed_port: int
) -> None:
    line = await refused_start(f"http://127.0.0.1:{closed_port}", tmp_path / "data")
    assert "cannot reach Discord" in line


async def test_names_in_dotenv_that_are_no_setting_are_named_in_one_warning(
    tmp_path: Path, closed_port: int
) -> None:
    """Nothing reads them (`.env` is not the environment): a typo, or HTTPS_PROXY meant
    for the process, was ignored without a word. Their values are not shown."""
    (tmp_path / ".env").write_text(
        "COMAND_PREFIX=?\nhttps_proxy=http://127.0.0.1:1\nGEMINI_APIKEY=hush-hush-key\n"
    )
    await refused_start(f"http://127.0.0.1:{closed_port}", tmp_path / "data")
    output = (tmp_path / "bot.out").read_text()
    warnings = [line for line in output.splitlines() if ".env" in line and " WARNING " in line]
    assert len(warnings) == 1, output
    assert warnings[0].endswith(
        "ignored in .env, as no setting of the bot has the name (see .env.example):"
        " COMAND_PREFIX, GEMINI_APIKEY, HTTPS_PROXY"
    ), warnings[0]
    assert "hush-hush-key" not in output


async def test_a_rejected_token_stops_the_start_as_a_bad_setting_not_restarted(
    tmp_path: Path,
) -> None:
    """Exit status 1 made systemd start the bot again every 5 s for ever; a rejected
    token is a setting to fix, as RestartPreventExitStatus=2 of the units knows them."""
    async with DiscordRejectingTheToken() as discord:
        line = await refused_start(f"http://127.0.0.1:{discord.port}", tmp_path / "data", 2)
    assert line.endswith(
        "Discord rejected DISCORD_TOKEN; check the token in the developer portal"
    ), line


async def test_a_token_reset_while_the_bot_runs_stops_it_as_a_bad_setting(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    """The gateway closes with 4004 (authentication failed) once the token is reset in
    the developer portal: that ended in a traceback and exit status 1 (restarted)."""
    bot = await BotProcess.launch(
        discord_fake.url,
        tmp_path / "data",
        tmp_path / "bot.out",
        DISCORD_TOKEN=TOKEN,
        MEMORY_ENABLED="false",
    )
    try:
        await discord_fake.wait_for(
            lambda: discord_fake.identifies or bot.process.returncode is not None, timeout=60
        )
        # The token no longer works, whatever the client tries next: a loaded client may
        # read the first close as resumable, as it may any close of a live session.
        discord_fake.refuse_sessions(4004)
        await discord_fake.drop_connection(code=4004)
    finally:
        output = await exited(bot)
    assert bot.process.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert error_lines(output)[-1].endswith(
        "Discord rejected DISCORD_TOKEN; check the token in the developer portal"
    ), output[-3000:]


async def test_too_few_shards_for_discord_stop_the_start_as_a_bad_setting(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    """Discord closes the gateway with 4011 (sharding required) when SHARD_COUNT is too
    low for the bot's servers: that ended in a traceback and exit status 1, and systemd
    started it again every 5 s, each start one more IDENTIFY of Discord's daily 1000."""
    discord_fake.refuse_sessions(4011)
    bot = await BotProcess.launch(
        discord_fake.url,
        tmp_path / "data",
        tmp_path / "bot.out",
        DISCORD_TOKEN=TOKEN,
        MEMORY_ENABLED="false",
        SHARD_COUNT="1",
    )
    output = await exited(bot)
    assert discord_fake.identifies >= 1
    assert bot.process.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    line = error_lines(output)[-1]
    assert "SHARD_COUNT=1" in line and "4011" in line, line


async def test_the_message_content_intent_off_stops_the_start_as_a_bad_setting(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    """Discord closes the gateway with 4014 while the Message Content intent is off in
    the developer portal. Exit status 1 made systemd start the bot again every 5 s, each
    start one more IDENTIFY of Discord's daily 1000, until the portal was fixed."""
    discord_fake.refuse_sessions(4014)
    bot = await BotProcess.launch(
        discord_fake.url,
        tmp_path / "data",
        tmp_path / "bot.out",
        DISCORD_TOKEN=TOKEN,
        MEMORY_ENABLED="false",
    )
    output = await exited(bot)
    assert discord_fake.identifies >= 1
    assert bot.process.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert error_lines(output)[-1].endswith(
        "enable the Message Content intent for the bot in the developer portal"
    ), output[-3000:]
