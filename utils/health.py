"""The operations endpoint inside the bot process: `/healthz`, `/readyz` and `/metrics`.

Served with aiohttp on `HEALTH_HOST:HEALTH_PORT` (127.0.0.1 by default; off without
a port). Also owns the event-loop lag monitor and the collector that reads the
bot's state (circuit breakers, voice connections, SQLite's file size) at each scrape.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from utils.db import DB_ERRORS
from utils.db_sqlite import SqliteDatabase
from utils.reliability.circuit_breaker import CircuitState

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

LAG_INTERVAL = 0.5  # seconds between event-loop lag measurements
DB_TIMEOUT = 2.0  # seconds /readyz waits for the database
# Seconds a connection may sit without a whole request (idle, or headers trickling in).
# aiohttp's default is an hour: connections nobody closes would hold the bot's file
# descriptors, which Discord, voice and the database need.
IDLE_TIMEOUT = 5.0


class HealthUnavailable(RuntimeError):
    """HEALTH_HOST:HEALTH_PORT cannot be served; the message says why, in one line."""


class _BotState(Collector):
    """Gauges read from the bot when scraped."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def collect(self) -> Iterator[Metric]:
        states = GaugeMetricFamily(
            "gembot_circuit_breaker_state",
            "1 for the state each circuit breaker is in (closed, open, half_open)",
            labels=["breaker", "state"],
        )
        failures = GaugeMetricFamily(
            "gembot_circuit_breaker_failures",
            "Consecutive failures each circuit breaker has counted",
            labels=["breaker"],
        )
        for breaker in self.bot.breakers:
            current = breaker.state
            for state in CircuitState:
                states.add_metric([breaker.name, state.value], float(state is current))
            failures.add_metric([breaker.name], breaker.failures)
        yield states
        yield failures
        yield GaugeMetricFamily(
            "gembot_voice_sessions",
            "Voice channels the bot is connected to",
            value=len(self.bot.voice_clients),
        )
        if not isinstance(self.bot.db, SqliteDatabase):
            return  # PostgreSQL's size is its server's to report
        path = self.bot.db.path
        size = sum(
            file.stat().st_size
            for file in (path, path.with_name(path.name + "-wal"))
            if file.exists()
        )
        yield GaugeMetricFamily(
            "gembot_database_bytes", "Size of the SQLite database and its write-ahead log", size
        )


class HealthServer:
    """The HTTP endpoint and the event-loop lag monitor, for one bot."""

    def __init__(self, bot: Bot, *, host: str, port: int, max_lag: float) -> None:
        self.bot = bot
        self.host = host
        self.port = port  # the bound port once started (0 asks the OS for a free one)
        self.max_lag = max_lag
        self._last_lag = 0.0
        self._last_tick = time.monotonic()
        self._monitor: asyncio.Task[None] | None = None
        self._database_down = False  # as the last probe found it
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=IDLE_TIMEOUT)
        bot.metrics.registry.register(_BotState(bot))

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                reason = "the port is in use (each bot process needs a HEALTH_PORT of its own)"
            else:  # e.g. HEALTH_HOST is no address of this machine
                why = os.strerror(error.errno) if error.errno and error.errno > 0 else str(error)
                reason = f"{why} (check HEALTH_HOST and HEALTH_PORT)"
            raise HealthUnavailable(
                f"cannot serve health checks on {self._address()}: {reason}"
            ) from error
        self.port = self._runner.addresses[0][1]
        self._last_tick = time.monotonic()
        self._monitor = asyncio.create_task(self._measure_lag(), name="event-loop-lag")
        log.info("health and metrics on http://%s/", self._address())

    def _address(self) -> str:
        """host:port as a URL spells it: an IPv6 address in brackets (``[::1]:9464``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        await self._runner.cleanup()

    # Event-loop lag

    async def _measure_lag(self) -> None:
        # A plain sleep on purpose: the lag is how late it wakes up, which tasks.loop
        # (it schedules against the clock and catches up) would hide.
        while True:
            await asyncio.sleep(LAG_INTERVAL)
            now = time.monotonic()
            self._last_lag = max(0.0, now - self._last_tick - LAG_INTERVAL)
            self._last_tick = now
            self.bot.metrics.event_loop_lag.set(self._last_lag)
            if self._last_lag > self.max_lag:
                log.warning("the event loop was blocked for %.1f s", self._last_lag)

    def lag(self) -> float:
        """The last lag measured, or the current one if the monitor is already late."""
        overdue = time.monotonic() - self._last_tick - LAG_INTERVAL
        return max(self._last_lag, overdue)

    # Endpoints

    async def _healthz(self, request: web.Request) -> web.Response:
        lag = self.lag()
        if lag > self.max_lag:
            return web.Response(status=503, text=f"event loop lagging: {lag:.1f} s\n")
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = []
        bot = self.bot
        if bot.shutdown_manager.is_shutting_down or bot.is_closed():
            problems.append("shutting down")
        elif not bot.is_ready() or not bot.shards:
            problems.append("gateway not connected")
        elif down := sorted(shard.id for shard in bot.shards.values() if shard.is_closed()):
            # Every shard this process runs must be connected: the guilds of one that
            # is down get no answer, however well the others do.
            problems.append(f"gateway not connected (shard {', '.join(map(str, down))})")
        if not await self._database_answers():
            problems.append("database not answering")
        if problems:
            return web.Response(status=503, text="not ready: " + ", ".join(problems) + "\n")
        return web.Response(text="ready\n")

    async def _database_answers(self) -> bool:
        """Whether the database answers; logs when that changes, not at every probe
        (a probe every few seconds would repeat one line all through an outage)."""
        try:
            async with asyncio.timeout(DB_TIMEOUT):
                await self.bot.db.ping()
        except (*DB_ERRORS, RuntimeError) as error:
            if not self._database_down:
                log.warning("readiness: the database is not answering: %r", error)
            self._database_down = True
            return False
        if self._database_down:
            log.info("readiness: the database answers again")
        self._database_down = False
        return True

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.bot.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
