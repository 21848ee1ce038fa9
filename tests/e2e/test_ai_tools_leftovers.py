"""AI tools where Discord's rules are less obvious: threads in an announcement channel, a
server change whose outcome is unknown, the tool commands where the bot may not embed.
The real bot, google-genai and discord.py against the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from cogs.ai.tools.toolbox import NOT_ANSWERING, UNKNOWN_OUTCOME, UNKNOWN_REPEATED
from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, responses, server_on, slash
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.e2e.test_music_memory_without_embed_links import answer, deny_embeds
from tests.fakes.discord_models import NEWS_CHANNEL, NEWS_THREAD
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

VIEW = discord.Permissions(view_channel=True).value


async def test_a_thread_in_an_announcement_channel_is_an_announcement_thread(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    news = guild.add_channel("news", NEWS_CHANNEL)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    launch = await discord_fake.send_message(news, member, "We launch on Friday!")

    reply = await run(
        mod,
        [
            ("create_thread", {"name": "Questions"}),
            ("create_thread", {"name": "Launch", "message_id": str(launch.id)}),
        ],
        channel=news,
    )

    assert all("created" in r for _, r in gemini_fake.requests[-1].function_responses)
    questions = next(t for t in guild.threads.values() if t.name == "Questions")
    assert questions.type == NEWS_THREAD and questions.parent_id == news.id
    assert guild.threads[launch.id].type == NEWS_THREAD
    assert "-# 🧵 started #Questions · 🧵 started #Launch" in reply.content


async def test_a_refused_role_does_not_name_a_channel_hidden_from_the_asker(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """The reply tells the asker why a role is refused without naming a channel they
    cannot see (as listing channels and finding them never do)."""
    helpers = guild.add_role("Helpers", 0, position=1)
    staff = guild.add_text_channel("staff-secrets")
    guild.set_overwrite(staff, guild.id, deny=VIEW, member=False)
    moderate = discord.Permissions(manage_messages=True, view_channel=True).value
    guild.set_overwrite(staff, helpers.id, allow=moderate, member=False)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(mod, [("give_role", {"role": "Helpers"})])

    refused = responses(gemini_fake)["give_role"]["refused"]
    assert refused.startswith("Refused: @Helpers in a channel mod cannot see would grant Manage")
    assert "staff" not in refused
    assert helpers not in guild.members[mod.id].roles


async def test_a_change_discord_failed_to_confirm_is_not_called_made(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Discord made the channel but answered 503: the model hears that nobody knows whether
    it was made, also when it tries again (no second channel), and so does the audit."""
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    discord_fake.fail_after[("POST", f"/guilds/{guild.id}/channels")] = 503
    events = ("create_channel", {"name": "events"})

    await run(mod, [events, events], text="Not sure it was made.")

    (_, first), (_, again) = gemini_fake.requests[-1].function_responses
    assert first == {"error": f"{NOT_ANSWERING} {UNKNOWN_OUTCOME}"}
    assert again == {"refused": UNKNOWN_REPEATED}
    assert [c.name for c in guild.channels.values()].count("events") == 1
    audit = await slash(discord_fake, guild, discord_fake.owner, "audit")
    maybe, refused = audit.embeds[0]["fields"]  # apart: it may have been done
    assert maybe["name"] == "May have been done (outcome unknown)"
    assert "❔ Discord error 503 (may have been done)" in maybe["value"]
    assert refused["name"] == "Refused or failed" and "503" not in refused["value"]


async def test_prefix_audit_and_tools_answer_in_text_where_the_bot_may_not_embed(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Without Embed Links Discord drops a message's embeds and refuses the empty rest:
    `!ai audit`, `!ai tools` and `!ai status` said nothing there."""
    bot = await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    await run(mod, [("create_channel", {"name": "games"})])
    await deny_embeds(discord_fake, guild, bot)

    owner = discord_fake.owner
    audit = await answer(discord_fake, guild, owner, "!ai audit", "**What AI tools did here**\n")
    assert "✅ 📁 created #games" in audit.content and not audit.embeds
    tools = await answer(discord_fake, guild, owner, "!ai tools", "**AI tools in this server**\n")
    assert "✅ **server**" in tools.content and not tools.embeds
    # Memory is off on this bot: its tools are not there to switch on.
    assert not bot.settings.memory_enabled and "➖ **memory**: not available" in tools.content
    status = await answer(discord_fake, guild, owner, "!ai status", "**AI status**\n")
    assert "**Auto-respond**: off" in status.content and not status.embeds
