"""ChatStore: token-budgeted context, pruning, reset, channel preferences."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogs.ai.store import ChatStore, NewTurn
from utils.db import Database


@pytest.fixture
async def store(tmp_path: Path):
    db = Database(tmp_path / "bot.db")
    await db.connect()
    yield ChatStore(db)
    await db.close()


def exchange(i: int) -> list[NewTurn]:
    return [
        NewTurn("user", 7, "alice", f"question {i} " + "x" * 36),
        NewTurn("model", 0, "ai", f"answer {i}"),
    ]


async def test_recent_turns_fit_the_budget_newest_first(store: ChatStore) -> None:
    for i in range(5):
        await store.add_turns(1, 10, exchange(i))
    await store.add_turns(1, 11, exchange(99))  # another channel
    turns, overflow = await store.recent_turns(10, 0, budget=30)
    assert overflow
    assert [t.content.split()[1] for t in turns] == ["4", "4"][: len(turns)] or turns[
        -1
    ].content == "answer 4"
    assert turns[-1].content == "answer 4" and turns[0].id < turns[-1].id
    everything, overflow = await store.recent_turns(10, 0, budget=10_000)
    assert not overflow and len(everything) == 10
    assert all("99" not in t.content for t in everything)


async def test_prune_keeps_the_newest(store: ChatStore) -> None:
    for i in range(6):
        await store.add_turns(1, 10, exchange(i))
    assert await store.prune(10, keep=4) == 8
    remaining = await store.turns(10)
    assert [t.content for t in remaining][-1] == "answer 5" and len(remaining) == 4


async def test_reset_clears_history_and_summary_but_keeps_prefs(store: ChatStore) -> None:
    await store.add_turns(1, 10, exchange(0))
    await store.update_channel(1, 10, persona="pirate", summary="s", summary_upto=2)
    assert await store.reset(10) == 2
    prefs = await store.channel(10)
    assert prefs.persona == "pirate" and prefs.summary is None and prefs.summary_upto == 0
    assert await store.count(10) == 0


async def test_channel_preferences_and_guild_model(store: ChatStore) -> None:
    assert (await store.channel(5)).autorespond is False
    await store.update_channel(1, 5, autorespond=1)
    await store.update_channel(1, 6, autorespond=0)
    assert await store.autorespond_channels() == {5}
    with pytest.raises(ValueError):
        await store.update_channel(1, 5, nonsense=1)
    await store.set_guild_model(1, "gemini-x")
    assert await store.guild_model(1) == "gemini-x"
    assert await store.guild_model(None) is None
