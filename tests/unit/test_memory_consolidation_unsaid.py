"""Consolidation and messages deleted or edited in Discord while a pass reads them: a
fact learnt from what a message said before is never stored after it."""

from __future__ import annotations

import asyncio

import pytest

from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from tests.fakes.gemini_server import FakeGemini
from tests.unit.test_memory_service import (
    ALICE,
    GUILD_A,
    MakeService,
    gated,
    make_service,
    provider,
)
from utils.db import Database
from utils.gemini import GeminiProvider

__all__ = ["make_service", "provider"]  # the fixtures, shared with the service's tests

PIN = '[{"line": 1, "user": "Alice", "fact": "Alice\'s PIN is 4821."}]'


@pytest.mark.parametrize("change", ["deleted", "edited"])
async def test_a_message_deleted_or_edited_while_the_model_reads_it_leaves_no_fact(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "my PIN is 4821", message_id=501)])
    asked, release = gated(provider, monkeypatch)
    gemini_fake.reply(PIN)
    reading = asyncio.create_task(service.consolidate_once())
    await asked.wait()  # the model is still answering when Alice deletes or edits it
    if change == "deleted":
        await service.unsay(10, {501}, await chat.data.delete_messages(10, {501}))
    else:
        _, first = await chat.data.edit_message(10, 501, "my PIN is none of your business")
        assert first is not None
        await service.unsay(10, {501}, [first])
    release.set()
    assert await reading == 0
    assert await service.memories_of(GUILD_A, ALICE) == []


async def test_a_message_edited_before_a_pass_reads_it_gives_its_new_facts(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep wasps", message_id=501)])
    _, first = await chat.data.edit_message(10, 501, "I keep bees")
    assert first is not None
    await service.unsay(10, {501}, [first])
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice keeps bees."}]')
    assert await service.consolidate_once() == 1
    assert "I keep bees" in gemini_fake.requests[-1].last_user_text
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == ["Alice keeps bees."]
