"""AI server actions act on the place meant and check a permission where Discord checks
it: on the channel, thread or category acted on (not on the channel the person happened
to ask in), a category found as one when one is wanted, a forum's slowmode, a blank name
refused before Discord is asked. The real bot, google-genai and discord.py against the
fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from config import Settings
from tests.conftest import BASIC, StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, reason, requests, responses, server_on
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

FORUM_CHANNEL = 15


async def test_a_thread_moderator_renames_and_slows_a_thread_from_inside_it(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Manage Threads is what editing a thread takes; Manage Channels on its parent is not
    asked of a thread moderator."""
    helper = discord_fake.add_user("helper")
    guild.add_member(helper, permissions=BASIC | discord.Permissions(manage_threads=True).value)
    thread = guild.add_thread(guild.text, "help-1", discord_fake.owner)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        helper,
        [("set_slowmode", {"seconds": 10}), ("rename_channel", {"name": "solved"})],
        channel=thread,
    )

    assert [r for _, r in gemini_fake.requests[-1].function_responses] == [
        {"channel": f"<#{thread.id}>", "slowmode_seconds": 10},
        {"renamed": f"<#{thread.id}>", "from": "help-1", "to": "solved"},
    ]
    assert thread.rate_limit_per_user == 10 and thread.name == "solved"
    edits = requests(discord_fake, "PATCH", f"/channels/{thread.id}")
    assert {r.reason for r in edits} == {reason(helper)}


async def test_a_channel_managed_by_overwrite_is_edited_from_another_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Manage Channels in #ticket-alice (an overwrite) is what renaming it takes, wherever
    she asks from; it still reaches no other channel."""
    ticket = guild.add_text_channel("ticket-alice")
    other = guild.add_text_channel("ticket-bob")
    manage = discord.Permissions(manage_channels=True).value
    guild.set_overwrite(ticket, member.id, allow=manage, member=True)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        member,
        [
            ("set_slowmode", {"seconds": 5, "channel": "#ticket-alice"}),
            ("rename_channel", {"channel": "#ticket-alice", "name": "ticket-alice-done"}),
            ("set_slowmode", {"seconds": 5, "channel": "#ticket-bob"}),
            ("set_slowmode", {"seconds": 5}),
        ],
    )

    assert [r for _, r in gemini_fake.requests[-1].function_responses] == [
        {"channel": f"<#{ticket.id}>", "slowmode_seconds": 5},
        {"renamed": f"<#{ticket.id}>", "from": "ticket-alice", "to": "ticket-alice-done"},
        {"refused": "alice needs the Manage Channels permission in #ticket-bob."},
        {"refused": "alice needs the Manage Channels permission in #general."},
    ]
    assert ticket.name == "ticket-alice-done" and ticket.rate_limit_per_user == 5
    assert other.rate_limit_per_user == 0 and guild.text.rate_limit_per_user == 0


async def test_a_category_named_like_a_channel_is_found_as_the_category(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """A "General" category over a #general channel, as in most servers: the category is
    the one asked for as a category, the channel the one renamed or slowed."""
    category = guild.add_category("General")  # listed after #general
    lobbies = guild.add_category("Lobby")  # listed before #lobby
    lobby = guild.add_text_channel("lobby")
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        mod,
        [
            ("create_channel", {"name": "memes", "category": "general"}),
            ("create_channel", {"name": "queue", "category": "lobby"}),
            ("set_slowmode", {"seconds": 5, "channel": "lobby"}),
            ("rename_channel", {"name": "hall", "channel": "#lobby"}),
        ],
    )

    results = [r for _, r in gemini_fake.requests[-1].function_responses]
    assert [r.get("category") for r in results[:2]] == ["General", "Lobby"], results
    made = {c.name: c for c in guild.channels.values()}
    assert made["memes"].parent_id == category.id and made["queue"].parent_id == lobbies.id
    assert lobby.rate_limit_per_user == 5, results
    assert lobby.name == "hall" and lobbies.name == "Lobby"


async def test_a_forums_slowmode_is_set_like_a_channels(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """A forum has a slowmode too (between posts), as Discord's settings show."""
    forum = guild.add_channel("help", FORUM_CHANNEL)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(mod, [("set_slowmode", {"seconds": 60, "channel": "#help"})])

    assert responses(gemini_fake)["set_slowmode"] == {
        "channel": f"<#{forum.id}>",
        "slowmode_seconds": 60,
    }
    assert forum.rate_limit_per_user == 60


async def test_a_blank_name_is_a_bad_argument_not_a_refusal_by_discord(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        mod,
        [
            ("create_channel", {"name": "   "}),
            ("create_thread", {"name": "\n"}),
            ("rename_channel", {"name": " "}),
            ("create_role", {"name": "\t"}),
        ],
    )

    results = [r for _, r in gemini_fake.requests[-1].function_responses]
    assert (
        results == [{"error": "Bad arguments (name: String should have at least 1 character)."}] * 4
    )
    assert guild.text.name == "general"
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/roles")
    assert not requests(discord_fake, "POST", f"/channels/{guild.text.id}/threads")
    assert not requests(discord_fake, "PATCH", f"/channels/{guild.text.id}")
