"""What the info tools tell the model is read by everyone in the channel the reply goes
to: a staff member's question in #general names (or counts) no staff channel. The real bot,
google-genai and discord.py against the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, responses
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.fakes.discord_server import FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini


async def test_channels_listed_are_those_everyone_reading_the_reply_can_see(
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    view = discord.Permissions(view_channel=True).value
    staff_role = guild.add_role("staff")
    guild.give_role(mod, staff_role)
    staff = guild.add_text_channel("staff-only")
    guild.set_overwrite(staff, guild.id, deny=view, member=False)
    guild.set_overwrite(staff, staff_role.id, allow=view, member=False)
    await start_bot(ai_settings(**UNLIMITED))

    def listed() -> list[str]:
        return [c["name"] for c in responses(gemini_fake)["list_channels"]["channels"]]

    calls = [("list_channels", {}), ("server_info", {})]
    await run(mod, calls)
    assert "general" in listed() and "staff-only" not in listed()
    assert responses(gemini_fake)["server_info"]["text_channels"] == 1, "nor counts it"

    await run(mod, calls, channel=staff)
    assert {"general", "staff-only"} <= set(listed())
    assert responses(gemini_fake)["server_info"]["text_channels"] == 2
