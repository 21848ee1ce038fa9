"""Facts people tell the bot (`MemoryService.add_fact`): where a fact told again counts."""

from __future__ import annotations

from tests.unit.test_memory_service import ALICE, GUILD_A, MakeService, make_service, texts

__all__ = ["make_service"]  # the fixture, shared with the service's tests

STAFF = 55  # a channel only some members may read


async def test_a_fact_told_to_all_after_it_was_said_in_a_hidden_channel_counts_for_all(
    make_service: MakeService,
) -> None:
    """Said through the AI in a staff channel, a fact is recalled only for its readers;
    told again with /memory add, it counts everywhere, as /memory add facts do."""
    service = await make_service()
    hidden = await service.add_fact(GUILD_A, ALICE, "alice", "I own a red kayak", channel_id=STAFF)
    told = await service.add_fact(GUILD_A, ALICE, "alice", "I own a red kayak")
    assert told.id != hidden.id and told.channel_id is None
    outsider = await texts(service, GUILD_A, "who owns a kayak?", readable=lambda c: c != STAFF)
    assert outsider == ["alice: I own a red kayak"]
    again = await service.add_fact(GUILD_A, ALICE, "alice", "I own a red kayak", channel_id=STAFF)
    assert again.id == told.id  # told to everyone already: kept once
