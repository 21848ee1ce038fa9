"""`/ai` settings changed by two people at once: neither change is lost."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild
from utils.tools import Family


async def test_two_tool_families_switched_at_once_both_stay_switched(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    switches = [
        await discord_fake.invoke_slash(
            guild.text, discord_fake.owner, "ai", options, subcommand="tools"
        )
        for options in ({"family": "search", "mode": "off"}, {"family": "music", "mode": "off"})
    ]
    for switch in switches:
        await discord_fake.wait_for(lambda switch=switch: switch.followups)
    stored = (await bot.chats.prefs.guild(guild.id)).tools
    assert stored is not None
    assert Family.SEARCH.value not in stored and Family.MUSIC.value not in stored
