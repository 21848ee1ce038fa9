"""Why a start failed, in one line, and the exit status that tells systemd whether
starting again can help: 2 for a setting to fix (the units do not restart it), 1 for
what may pass (an outage, a full disk)."""

from __future__ import annotations

import logging
import sqlite3

import aiohttp
import discord

from config import Settings
from utils.db import DatabaseUnavailable, is_damaged
from utils.health import HealthUnavailable

log = logging.getLogger("bot")

START_FAILURES = (
    discord.LoginFailure,
    discord.ConnectionClosed,
    DatabaseUnavailable,
    discord.PrivilegedIntentsRequired,
    HealthUnavailable,
    aiohttp.ClientConnectionError,
    discord.HTTPException,
    discord.GatewayNotFound,
    sqlite3.DatabaseError,
)
"""What a start can fail with for a reason outside the code (`failed_start` says which)."""

SHARDING_REFUSED = {
    4010: "invalid shard",
    4011: "sharding required: the bot is in too many servers for that many shards",
}
"""Gateway close codes that say the shards do not suit the bot's servers."""


def failed_start(settings: Settings, error: Exception) -> int:
    """Log why the bot could not start (or stopped running) and return the exit status;
    re-raise what is a bug after all."""
    if isinstance(error, discord.LoginFailure | discord.ConnectionClosed):
        code = error.code if isinstance(error, discord.ConnectionClosed) else 4004
        if code in SHARDING_REFUSED:
            return _sharding_refused(settings, code)
        # 4004: the gateway refused the token (reset while the bot ran, say).
        if code != 4004:
            raise error
        # A bad setting like those of load_settings: restarting cannot fix it (status 2).
        log.error("Discord rejected DISCORD_TOKEN; check the token in the developer portal")
        return 2
    if isinstance(error, DatabaseUnavailable):
        log.error("%s", error)
        return 2 if error.setting else 1  # 2: DATABASE_URL to fix, as load_settings's
    if isinstance(error, discord.PrivilegedIntentsRequired):
        # A setting of the developer portal: a restart cannot fix it, and would spend one
        # more of Discord's daily IDENTIFYs.
        log.error("enable the Message Content intent for the bot in the developer portal")
        return 2
    if isinstance(error, HealthUnavailable):
        log.error("%s", error)
        return 1
    if isinstance(error, aiohttp.ClientConnectionError):
        log.error("cannot reach Discord (%s); check the network and discordstatus.com", error)
        return 1
    if isinstance(error, discord.HTTPException | discord.GatewayNotFound):
        # Logging in or asking for the gateway failed (an outage, say); the answer's body
        # may be a whole HTML page, so only its status is worth a line.
        answer = error if isinstance(error, discord.HTTPException) else error.__cause__
        why = f"HTTP {answer.status}" if isinstance(answer, discord.HTTPException) else "no gateway"
        log.error("Discord failed the start (%s); try again later (discordstatus.com)", why)
        return 1
    assert isinstance(error, sqlite3.DatabaseError)
    if is_damaged(error):
        log.error(
            "the database %s is damaged (%s); restore a backup with"
            " `python -m scripts.db restore PATH` (backups are in %s)",
            settings.database_path,
            error,
            settings.data_dir / "backups",
        )
    elif isinstance(error, sqlite3.OperationalError):  # the file, not the code
        log.error(
            "cannot use the database %s (%s); check the disk and that the bot's user may write it",
            settings.database_path,
            error,
        )
    else:
        raise error
    return 1


def _sharding_refused(settings: Settings, code: int) -> int:
    """Say why Discord refused the shards; the exit status (2: SHARD_COUNT is a setting
    to fix, and a restart would only spend one more of Discord's daily IDENTIFYs)."""
    why = f"gateway close code {code}: {SHARDING_REFUSED[code]}"
    if settings.shard_count is None:  # Discord's own count, fetched again at the next start
        log.error("Discord refused its recommended shard count (%s); try again later", why)
        return 1
    log.error(
        "Discord refused SHARD_COUNT=%d (%s); set more shards, or leave SHARD_COUNT empty"
        " for Discord's recommended count",
        settings.shard_count,
        why,
    )
    return 2
