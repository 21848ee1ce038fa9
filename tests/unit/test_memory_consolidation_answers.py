"""Consolidation and the model's answers that are not whole: a channel whose answer was
cut short or refused is read again next pass, as one the model failed on."""

from __future__ import annotations

from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from tests.fakes.gemini_server import FakeGemini
from tests.unit.test_memory_service import ALICE, GUILD_A, MakeService, make_service, provider
from utils.db import Database
from utils.gemini import GeminiProvider
from utils.memory.consolidation_marks import ConsolidationMarks

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
