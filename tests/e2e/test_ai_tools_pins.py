"""Pinning through the AI says what happened: a message already pinned (or not pinned) is
left as it is, and neither the reply's small print nor the audit claims a change. The
real bot, google-genai and discord.py against the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, requests, responses, server_on, slash
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_pinning_a_pinned_message_or_unpinning_one_that_is_not_changes_nothing(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    rules = await discord_fake.send_message(guild.text, member, "Rule 1: be kind")
    await run(mod, [("pin_message", {"message_id": str(rules.id)})])
    assert rules.pinned

    again = await run(mod, [("pin_message", {})], text="It was pinned already.", reference=rules)
    assert responses(gemini_fake)["pin_message"] == {
        "message": str(rules.id),
        "pinned": False,
        "why": "it is already pinned",
    }
    assert again.content == "It was pinned already."
    assert len(requests(discord_fake, "PUT", str(rules.id))) == 1

    await run(mod, [("unpin_message", {"message_id": str(rules.id)})])
    assert not rules.pinned
    gone = await run(mod, [("unpin_message", {"message_id": str(rules.id)})], text="Not pinned.")
    assert responses(gemini_fake)["unpin_message"] == {
        "message": str(rules.id),
        "unpinned": False,
        "why": "it is not pinned",
    }
    assert gone.content == "Not pinned."
    assert len(requests(discord_fake, "DELETE", str(rules.id))) == 1

    audit = await slash(discord_fake, guild, discord_fake.owner, "audit")
    lines = audit.embeds[0]["description"].splitlines()
    assert ["📍 unpinned" in lines[0], "📌 pinned" in lines[2]] == [False, False]
    assert "📍 unpinned a message" in lines[1] and "📌 pinned a message" in lines[3]
