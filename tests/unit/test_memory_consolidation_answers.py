"""Consolidation and the model's answers: a channel whose answer was cut short or refused
is read again next pass, as one the model failed on; a rate limit stops the pass; the
server's chosen model is the one asked."""

from __future__ import annotations

import pytest

from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from tests.fakes.gemini_server import FakeGemini
from tests.unit.test_memory_service import ALICE, GUILD_A, MakeService, make_service, provider
from utils.db import Database
from utils.gemini import GeminiProvider
from utils.gemini_replies import AIBusyError
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.reliability.circuit_breaker import CircuitBreaker

__all__ = ["make_service", "provider"]  # the fixtures, shared with the service's tests

BEES = '[{"line": 1, "user": "Alice", "fact": "Alice keeps bees."}]'


async def test_an_answer_cut_short_or_refused_is_asked_again_next_pass(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
    gemini_fake.reply(BEES[:30], finish_reason="MAX_TOKENS")
    assert await service.consolidate_once() == 0
    assert 10 not in await ConsolidationMarks(db).consolidated([10]), "tried again next pass"
    gemini_fake.block_prompt()
    assert await service.consolidate_once() == 0
    assert 10 not in await ConsolidationMarks(db).consolidated([10])
    gemini_fake.reply(BEES)
    assert await service.consolidate_once() == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == ["Alice keeps bees."]


async def test_facts_are_asked_of_the_model_the_server_chose(
    make_service: MakeService, gemini_fake: FakeGemini, db: Database
) -> None:
    """A server that chose its model with `/ai model` pays for that one, in consolidation
    as in its replies and summaries; a DM's conversation goes to the default."""
    provider = GeminiProvider(
        "test-key",
        CircuitBreaker("gemini"),
        base_url=gemini_fake.url,
        model="gemini-test",
        allowed_models=("gemini-pro",),
        timeout=5,
        max_retries=0,
    )
    try:
        service = await make_service(provider=provider)
        chat = ChatStore(db)
        await chat.prefs.set_guild_model(1, "gemini-pro")
        await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
        await chat.add_turns(None, 11, [Turn("user", ALICE, "Alice", "I keep goats")])
        gemini_fake.default = lambda _: "[]"
        assert await service.consolidate_once() == 0
    finally:
        await provider.close()
    asked = {"bees" in r.last_user_text: r.model for r in gemini_fake.requests}
    assert len(gemini_fake.requests) == 2
    assert asked == {True: "gemini-pro", False: "gemini-test"}, "the DM's: the default"


async def test_a_rate_limit_stops_the_pass_and_gives_up_no_channel(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    """A rate limit is the AI's, not the conversation's: the pass stops (the other channels
    would be refused too) and the channel's messages are read once it is over, however
    many passes it lasted."""
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
    for _ in range(3):
        gemini_fake.fail(429, retry_delay=3600)
        with pytest.raises(AIBusyError):
            await service.consolidate_once()
    assert 10 not in await ConsolidationMarks(db).consolidated([10])
    gemini_fake.reply(BEES)
    assert await service.consolidate_once() == 1


async def test_facts_are_asked_under_the_channels_safety_level(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    """A channel's `/ai safety` level holds for consolidation as for its replies and
    summaries: a stricter default filter would refuse what its replies may say, and the
    channel's facts would never be read; a channel with none gets Google's default."""
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.prefs.update_channel(1, 10, safety="off")
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
    await chat.add_turns(1, 11, [Turn("user", ALICE, "Alice", "I keep goats")])
    gemini_fake.default = lambda _: "[]"
    assert await service.consolidate_once() == 0
    sent = {
        "bees" in r.last_user_text: r.json.get("safetySettings")
        or r.json.get("generationConfig", {}).get("safetySettings")
        for r in gemini_fake.requests
    }
    assert len(gemini_fake.requests) == 2
    assert {s["threshold"] for s in sent[True]} == {"OFF"}
    assert sent[False] is None, "no level chosen: Google's default"
