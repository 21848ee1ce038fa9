"""Channel summaries: a summary asked for now and one written in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cogs.ai.records import Place, Turn
from cogs.ai.store import ChatStore
from cogs.ai.summaries import Summaries
from tests.conftest import eventually
from tests.fakes.gemini_server import FakeGemini
from utils.db import Database
from utils.errors import BotError
from utils.gemini import GeminiProvider
from utils.reliability.circuit_breaker import CircuitBreaker
from utils.usage import UsageStore

PLACE = Place(1, 10, "the #garden channel")


@pytest.fixture
async def provider(gemini_fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(
        "test-key", CircuitBreaker("gemini"), base_url=gemini_fake.url, model="gemini-main"
    )
    yield provider
    await provider.close()


async def test_summarize_during_a_background_summary_waits_for_it_and_is_kept(
    db: Database, gemini_fake: FakeGemini, provider: GeminiProvider
) -> None:
    """`/ai summarize` while the background summary of the channel is being written: it
    does not race it to fold the same turns (and be dropped though billed, saying there
    was nothing to summarise); it folds what is left after it."""
    store = ChatStore(db, context_tokens=100)
    for i in range(6):
        await store.add_turns(
            PLACE.guild_id,
            PLACE.channel_id,
            [Turn("user", 7, "alice", f"story {i} " + "x" * 60), Turn("model", 0, "ai", "ok")],
        )
    summaries = Summaries(provider, store, UsageStore(db))
    gemini_fake.reply("SUMMARY: the early stories.", chunk_delay=0.3)
    gemini_fake.reply("SUMMARY: all but the last story.", chunk_delay=0.6)

    summaries.later(PLACE)
    await eventually(lambda: gemini_fake.requests)
    assert await summaries.now(PLACE)
    prefs = await store.prefs.channel(PLACE.channel_id)
    assert prefs.summary == "SUMMARY: all but the last story."
    second = gemini_fake.requests[1].contents[0]["parts"][0]["text"]
    assert second.startswith("Earlier summary: SUMMARY: the early stories.")
    await summaries.close()


async def test_summarize_while_the_conversation_is_reset_says_so(
    db: Database, gemini_fake: FakeGemini, provider: GeminiProvider
) -> None:
    """`/ai summarize` whose summary is dropped because the conversation was reset while
    the model wrote it says so, not that there was nothing to summarise."""
    store = ChatStore(db)
    for i in range(3):
        await store.add_turns(
            PLACE.guild_id,
            PLACE.channel_id,
            [Turn("user", 7, "alice", f"story {i}"), Turn("model", 0, "ai", "ok")],
        )
    summaries = Summaries(provider, store, UsageStore(db))
    gemini_fake.reply(["SUMMARY: the early stories."], chunk_delay=0.3)

    asked = asyncio.create_task(summaries.now(PLACE))
    await eventually(lambda: gemini_fake.requests)
    await store.reset(PLACE.channel_id)
    with pytest.raises(BotError, match="changed while I summarised it"):
        await asked
    assert (await store.prefs.channel(PLACE.channel_id)).summary is None
    await summaries.close()


async def test_a_summary_is_written_by_the_model_the_server_chose(
    db: Database, gemini_fake: FakeGemini
) -> None:
    """`/ai model` is the model of the server's AI work: its summaries too."""
    provider = GeminiProvider(
        "test-key",
        CircuitBreaker("gemini"),
        base_url=gemini_fake.url,
        model="gemini-main",
        allowed_models=["gemini-pro"],
    )
    store = ChatStore(db)
    await store.prefs.set_guild_model(PLACE.guild_id, "gemini-pro")
    for i in range(3):
        await store.add_turns(
            PLACE.guild_id,
            PLACE.channel_id,
            [Turn("user", 7, "alice", f"story {i}"), Turn("model", 0, "ai", "ok")],
        )
    summaries = Summaries(provider, store, UsageStore(db))
    gemini_fake.reply("SUMMARY: stories.")
    try:
        assert await summaries.now(PLACE)
    finally:
        await summaries.close()
        await provider.close()
    assert [request.model for request in gemini_fake.requests] == ["gemini-pro"]
