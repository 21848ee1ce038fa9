"""Health, readiness and metrics over real HTTP, from a bot running against the fakes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import utils.health
from bot import Bot
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_ai_chat import ask, mention
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(bot: Bot, path: str) -> tuple[int, str]:
    assert bot.health is not None
    url = f"http://127.0.0.1:{bot.health.port}{path}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.text()


async def scrape(bot: Bot) -> tuple[str, Samples]:
    status, text = await get(bot, "/metrics")
    assert status == 200
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def body_if(bot: Bot, path: str, status: int) -> str | None:
    """The body of `path` if it answers `status` now."""
    got, body = await get(bot, path)
    return body if got == status else None


async def test_metrics_count_replies_tokens_errors_and_refusals(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings(health_port=0, ai_user_messages_per_minute=1))
    _, before = await scrape(bot)
    assert value(before, "gembot_ai_replies_total", outcome="ok") == 0
    assert value(before, "gembot_circuit_breaker_state", breaker="gemini", state="closed") == 1

    gemini_fake.fail(503)  # one failed attempt, then the retry answers
    gemini_fake.reply(
        ["Hello ", "there."], usage={"promptTokenCount": 40, "candidatesTokenCount": 7}
    )
    reply = await ask(discord_fake, guild.text, member, "hi")
    assert reply.content == "Hello there."
    # Over the per-user limit: refused with a notice (the barrier for the counts below).
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} again")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "faster" in m.content)
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong" in m.content)

    async def replied_ok() -> float:
        return value((await scrape(bot))[1], "gembot_ai_replies_total", outcome="ok")

    await eventually(replied_ok, equals=1)  # counted once the exchange is stored, after its edits
    text, after = await scrape(bot)
    assert value(after, "gembot_ai_replies_total", outcome="ok") == 1
    assert value(after, "gembot_ai_replies_total", outcome="rate_limited") == 1
    assert value(after, "gembot_ai_notices_total") == 1
    assert value(after, "gembot_messages_answered_total", kind="ai") == 1
    assert value(after, "gembot_messages_answered_total", kind="command") == 1
    assert value(after, "gembot_ai_reply_first_text_seconds_count") == 1
    assert value(after, "gembot_ai_reply_seconds_count") == 1
    first = value(after, "gembot_ai_reply_first_text_seconds_sum")
    assert 0 < first <= value(after, "gembot_ai_reply_seconds_sum") < 10
    assert value(after, "gembot_gemini_tokens_total", direction="in") == 40
    assert value(after, "gembot_gemini_tokens_total", direction="out") == 7
    assert value(after, "gembot_gemini_errors_total", kind="server") == 1
    assert value(after, "gembot_circuit_breaker_state", breaker="gemini", state="closed") == 1
    assert value(after, "gembot_voice_sessions") == 0
    assert value(after, "gembot_music_queued_tracks") == 0
    if bot.db.backend == "sqlite":
        assert value(after, "gembot_database_bytes") > 0
    else:  # the size of a PostgreSQL database is its server's to report
        assert ("gembot_database_bytes", frozenset()) not in after
    assert ("gembot_event_loop_lag_seconds", frozenset()) in after
    for discord_id in (guild.id, guild.text.id, member.id, discord_fake.bot_user.id):
        assert str(discord_id) not in text, "no Discord ids in label values"


async def test_breaker_state_and_error_kinds(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings(health_port=0, gemini_max_retries=0, ai_breaker_threshold=1))
    gemini_fake.fail(500)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} one")
    await discord_fake.wait_for_message(guild.text)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} two")
    await discord_fake.wait_for_message(guild.text, after=1)
    _, samples = await scrape(bot)
    assert value(samples, "gembot_circuit_breaker_state", breaker="gemini", state="open") == 1
    assert value(samples, "gembot_circuit_breaker_state", breaker="gemini", state="closed") == 0
    assert value(samples, "gembot_gemini_errors_total", kind="server") == 1
    # The second message is refused before any model request is built.
    assert len(gemini_fake.requests) == 1
    assert value(samples, "gembot_gemini_errors_total", kind="circuit_open") == 0
    # The failure that opened the breaker is answered "unavailable" too.
    assert value(samples, "gembot_ai_replies_total", outcome="unavailable") == 2
    assert value(samples, "gembot_messages_answered_total", kind="ai") == 0


async def test_readyz_follows_the_gateway_and_the_database(
    discord_fake: FakeDiscord, guild: FakeGuild, make_settings: Callable[..., Settings]
) -> None:
    bot = Bot(make_settings(health_port=0), extensions=[], guild_ready_timeout=0.1)
    async with bot:
        await bot.login("test-token")  # runs setup_hook, which starts the endpoint
        status, body = await get(bot, "/readyz")
        assert (status, body) == (503, "not ready: gateway not connected\n")
        assert await get(bot, "/healthz") == (200, "ok\n")
        connecting = asyncio.create_task(bot.connect())
        await bot.wait_until_ready()
        assert await get(bot, "/readyz") == (200, "ready\n")

        async with discord_fake.disconnected():
            down = await eventually(lambda: body_if(bot, "/readyz", 503))
            assert "gateway not connected" in down
            assert await get(bot, "/healthz") == (200, "ok\n")
        await eventually(lambda: body_if(bot, "/readyz", 200))
        assert discord_fake.identifies == 1, "resumed, not a new session"

        await bot.db.close()
        assert await get(bot, "/readyz") == (503, "not ready: database not answering\n")
        await bot.close()
        await connecting
    assert bot.health is not None
    try:
        await get(bot, "/healthz")
    except aiohttp.ClientConnectionError:
        pass
    else:
        raise AssertionError("the endpoint is still open after close")


@pytest.mark.backends("sqlite")  # a closed SQLite database can be opened again
async def test_readyz_logs_when_the_database_goes_and_comes_back_not_at_every_probe(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A probe every few seconds through an outage: one warning when it starts, one line
    when it ends, and a warning again for the next."""
    caplog.set_level(logging.INFO, logger="utils.health")
    bot = await start_bot(make_settings(health_port=0), extensions=[])
    down = "readiness: the database is not answering"
    await bot.db.close()
    for _ in range(3):
        assert await get(bot, "/readyz") == (503, "not ready: database not answering\n")
    assert caplog.text.count(down) == 1
    await bot.db.connect()
    assert await get(bot, "/readyz") == (200, "ready\n")
    assert await get(bot, "/readyz") == (200, "ready\n")
    assert caplog.text.count("readiness: the database answers again") == 1
    await bot.db.close()
    assert await get(bot, "/readyz") == (503, "not ready: database not answering\n")
    assert caplog.text.count(down) == 2


async def test_healthz_reports_a_stalled_event_loop(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(make_settings(health_port=0, health_max_lag=0.3), extensions=[])
    # Healthy once the start's own work is done (on a loaded machine it can lag at first).
    await eventually(lambda: body_if(bot, "/healthz", 200))
    # Block the bot's event loop on purpose: the lag monitor, whose next tick was due
    # within LAG_INTERVAL (0.5 s), runs at least 0.5 s late.
    time.sleep(1.0)  # noqa: ASYNC251
    status, body = await get(bot, "/healthz")
    assert status == 503 and body.startswith("event loop lagging")
    _, samples = await scrape(bot)
    assert value(samples, "gembot_event_loop_lag_seconds") >= 0.49
    await eventually(lambda: body_if(bot, "/healthz", 200))  # the next measurement is on time again


@pytest.mark.backends("sqlite")  # the HTTP server, whichever the database
async def test_a_connection_that_sends_no_whole_request_is_closed(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that connects and stalls (or trickles its headers) gives its socket back
    within the idle timeout: many of them would otherwise hold the bot's file descriptors."""
    monkeypatch.setattr(utils.health, "IDLE_TIMEOUT", 0.5)
    bot = await start_bot(make_settings(health_port=0), extensions=[])
    assert bot.health is not None
    silent = await asyncio.open_connection("127.0.0.1", bot.health.port)
    trickling = await asyncio.open_connection("127.0.0.1", bot.health.port)
    trickling[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    for reader, writer in (silent, trickling):
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the bot
        writer.close()
    assert await get(bot, "/healthz") == (200, "ok\n")
