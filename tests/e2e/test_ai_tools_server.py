"""AI server actions end to end: the real bot, google-genai and discord.py against the fakes.

The fake Gemini scripts the function calls; the fake Discord shows what changed, and the
audit-log reason of every change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord
import pytest

from cogs.ai.tools.toolbox import (
    MAX_CALLS,
    MAX_CHANGES,
    REFUSED_BY_DISCORD,
    REPEATED,
    TOO_MANY_CALLS,
    TOO_MANY_CHANGES,
)
from config import Settings
from tests.conftest import BASIC, StartBot
from tests.e2e.test_ai_tools import answer
from tests.fakes.discord_models import PRIVATE_THREAD, TEXT_CHANNEL
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini

SERVER_TOOLS = {
    "create_channel",
    "create_thread",
    "rename_channel",
    "set_slowmode",
    "pin_message",
    "unpin_message",
    "create_role",
    "give_role",
    "take_role",
}
UNLIMITED = {"ai_user_messages_per_minute": 100, "ai_channel_messages_per_minute": 100}
MODERATOR = (
    discord.Permissions(
        manage_channels=True, create_public_threads=True, pin_messages=True, manage_roles=True
    ).value
    | BASIC
)


@pytest.fixture
def mod(discord_fake: FakeDiscord, guild: FakeGuild) -> FakeUser:
    """A member who may manage channels, threads, pins and roles, but not the server."""
    user = discord_fake.add_user("mod")
    guild.add_member(user, permissions=MODERATOR)
    return user


@pytest.fixture
def run(discord_fake: FakeDiscord, gemini_fake: FakeGemini, guild: FakeGuild) -> Callable[..., Any]:
    """Script one model turn of `calls` and a closing text, ask as `user`; the reply."""

    async def ask(
        user: FakeUser,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        text: str = "Done.",
        reference: FakeMessage | None = None,
        channel: Any = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> FakeMessage:
        """`meanwhile` runs once the message is sent, while the bot works on it."""
        if calls:
            gemini_fake.reply_function_calls(calls)
        gemini_fake.reply(text)
        where = channel or guild.text
        sent = await discord_fake.send_message(
            where, user, f"<@{discord_fake.bot_user.id}> please", reference=reference
        )
        if meanwhile is not None:
            meanwhile()

        def finished() -> FakeMessage | None:
            replies = [m for m in discord_fake.messages_in(where) if m.reference == sent.id]
            return replies[0] if replies and not replies[0].content.endswith("⌛") else None

        asked = len(gemini_fake.requests)
        reply = await discord_fake.wait_for(finished, timeout=15)
        assert reply is not None
        assert len(gemini_fake.requests) == asked + 1 + bool(calls), reply.content
        return reply

    return ask


async def slash(
    fake: FakeDiscord, guild: FakeGuild, user: FakeUser, name: str, **options
) -> FakeMessage:
    interaction = await fake.invoke_slash(guild.text, user, "ai", options or None, subcommand=name)
    return await fake.answer(interaction)


async def server_on(fake: FakeDiscord, guild: FakeGuild) -> None:
    response = await slash(fake, guild, fake.owner, "tools", family="server", mode="on")
    assert "✅ **server**" in response.embeds[0]["description"]


def responses(gemini: FakeGemini) -> dict[str, dict]:
    """The function responses the model received last, by tool name."""
    return dict(gemini.requests[-1].function_responses)


def requests(fake: FakeDiscord, method: str, path_end: str) -> list:
    return [r for r in fake.requests if r.method == method and r.path.endswith(path_end)]


def reason(user: FakeUser) -> str:
    return f"AI tool for {user.name} ({user.id})"


async def test_server_actions_are_off_until_a_manager_turns_them_on(
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
    reply = await run(mod, [("create_channel", {"name": "games"})], text="I cannot do that here.")

    declared = set(gemini_fake.requests[0].declared_functions)
    assert not declared & SERVER_TOOLS
    assert {"server_info", "list_channels", "my_roles"} <= declared
    assert "no tool named 'create_channel'" in responses(gemini_fake)["create_channel"]["error"]
    assert reply.content == "I cannot do that here."
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")

    denied = await slash(discord_fake, guild, member, "tools", family="server", mode="on")
    assert "Manage Server" in denied.content
    await discord_fake.send_message(guild.text, member, "!ai tools server on")
    refused = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "Manage Server" in m.content
    )
    assert refused.content.startswith("You need the Manage Server permission")
    await run(mod, [])
    assert not set(gemini_fake.requests[-1].declared_functions) & SERVER_TOOLS

    await server_on(discord_fake, guild)
    await run(mod, [])
    assert set(gemini_fake.requests[-1].declared_functions) >= SERVER_TOOLS

    await discord_fake.send_message(guild.text, discord_fake.owner, "!ai tools server off")
    await discord_fake.wait_for_message(
        guild.text,
        predicate=lambda m: any("⛔ **server**" in e.get("description", "") for e in m.embeds),
    )
    await run(mod, [])
    assert not set(gemini_fake.requests[-1].declared_functions) & SERVER_TOOLS


async def test_channels_rename_and_slowmode(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    category = guild.add_category("Hangout")
    old = guild.add_text_channel("old-news")
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    reply = await run(
        mod,
        [
            ("create_channel", {"name": "Board Games", "category": "hangout"}),
            ("create_channel", {"name": "Lounge", "kind": "voice"}),
            ("rename_channel", {"channel": "#old-news", "name": "news"}),
            ("set_slowmode", {"seconds": 30}),
        ],
        text="All set.",
    )

    results = gemini_fake.requests[-1].function_responses
    assert [name for name, _ in results] == [
        "create_channel",
        "create_channel",
        "rename_channel",
        "set_slowmode",
    ]
    assert all("error" not in r and "refused" not in r for _, r in results), results
    text = next(c for c in guild.channels.values() if c.name == "board-games")
    voice = next(c for c in guild.channels.values() if c.name == "Lounge")
    assert text.parent_id == category.id and text.type == 0
    assert voice.type == 2 and voice.parent_id is None
    assert old.name == "news"
    assert guild.text.rate_limit_per_user == 30
    assert results[0][1]["category"] == "Hangout"
    changes = [
        *requests(discord_fake, "POST", f"/guilds/{guild.id}/channels"),
        *requests(discord_fake, "PATCH", f"/channels/{old.id}"),
        *requests(discord_fake, "PATCH", f"/channels/{guild.text.id}"),
    ]
    assert len(changes) == 4 and {r.reason for r in changes} == {reason(mod)}
    assert reply.content.startswith("All set.")
    assert reply.content.endswith(
        "-# 📁 created #board-games · 📁 created 🔊Lounge · ✏️ renamed #old-news to #news"
        " · 🐢 slowmode 30s in #general"
    )

    out_of_range = await run(mod, [("set_slowmode", {"seconds": 30000})])
    assert "Bad arguments" in responses(gemini_fake)["set_slowmode"]["error"]
    assert guild.text.rate_limit_per_user == 30
    assert "slowmode" not in out_of_range.content


async def test_threads_from_the_channel_and_from_a_message(
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
    topic = await discord_fake.send_message(guild.text, member, "Who wants to plan the trip?")

    reply = await run(
        mod,
        [
            ("create_thread", {"name": "Ideas"}),
            ("create_thread", {"name": "Trip", "message_id": str(topic.id)}),
        ],
    )

    assert all("created" in r for _, r in gemini_fake.requests[-1].function_responses)
    ideas = next(t for t in guild.threads.values() if t.name == "Ideas")
    assert ideas.type == 11 and ideas.parent_id == guild.text.id  # public
    assert guild.threads[topic.id].name == "Trip"
    made = requests(discord_fake, "POST", "/threads")
    assert len(made) == 2 and {r.reason for r in made} == {reason(mod)}
    assert "-# 🧵 started #Ideas · 🧵 started #Trip" in reply.content

    # Discord refuses a second thread from the same message: asking again won't help.
    await run(mod, [("create_thread", {"name": "Again", "message_id": str(topic.id)})])
    assert responses(gemini_fake)["create_thread"] == {"error": REFUSED_BY_DISCORD}


async def test_pin_the_replied_message_and_unpin_by_id(
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

    reply = await run(mod, [("pin_message", {})], reference=rules)
    assert responses(gemini_fake)["pin_message"] == {"pinned": str(rules.id)}
    assert rules.pinned
    assert "-# 📌 pinned a message" in reply.content

    no_target = await run(mod, [("pin_message", {})], text="Which one?")
    assert "Reply to it" in responses(gemini_fake)["pin_message"]["refused"]
    assert no_target.content == "Which one?"

    await run(mod, [("unpin_message", {"message_id": str(rules.id)})])
    assert responses(gemini_fake)["unpin_message"] == {"unpinned": str(rules.id)}
    assert not rules.pinned
    pins = [
        *requests(discord_fake, "PUT", str(rules.id)),
        *requests(discord_fake, "DELETE", str(rules.id)),
    ]
    assert len(pins) == 2 and {r.reason for r in pins} == {reason(mod)}

    await run(member, [("pin_message", {})], reference=rules)
    assert "needs the Pin Messages permission" in responses(gemini_fake)["pin_message"]["refused"]
    assert not rules.pinned


async def test_names_in_what_was_done_neither_ping_nor_break_its_line(
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

    reply = await run(
        mod,
        [
            ("create_role", {"name": "@everyone\n# FREE **nitro**"}),
            ("create_channel", {"name": "Lounge\n\n-# <@&1234567890123456789>", "kind": "voice"}),
            ("create_role", {"name": "here"}),
        ],
        text="Made them.",
    )

    assert reply.content == (
        "Made them.\n\n-# 🏷️ created @@\u200beveryone # FREE \\*\\*nitro\\*\\*"
        " · 📁 created 🔊Lounge -# <@\u200b&1234567890123456789> · 🏷️ created @\u200bhere"
    )


async def test_a_name_that_is_a_link_does_not_unfurl_under_the_reply(
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

    reply = await run(
        mod,
        [
            ("create_role", {"name": "https://example.com"}),
            ("create_channel", {"name": "see https://x.example/@everyone now", "kind": "voice"}),
        ],
        text="Made them.",
    )

    assert reply.content == (
        "Made them.\n\n-# 🏷️ created @<https://example.com>"
        " · 📁 created 🔊see <https://x.example/@\u200beveryone> now"
    )


async def test_roles_harmless_only_and_only_for_the_asker(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    send = discord.Permissions(send_messages=True).value
    gamer = guild.add_role("Gamer", send, position=1)  # below the bot's role
    mods = guild.add_role("Mods", discord.Permissions(kick_members=True).value, position=1)
    senior = guild.add_role("Senior", send)  # above every member's own role
    guild.give_role(discord_fake.bot_user, guild.add_role("Bot", 0))  # the bot above Senior
    vip = guild.add_role("VIP", send)  # at the top: above the bot's role
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    reply = await run(
        mod,
        [
            ("create_role", {"name": "Artists", "permissions": ["attach files", "embed_links"]}),
            ("give_role", {"role": "gamer"}),
        ],
    )
    artists = next(r for r in guild.roles.values() if r.name == "Artists")
    assert artists.permissions == discord.Permissions(attach_files=True, embed_links=True).value
    assert gamer in guild.members[mod.id].roles
    assert "-# 🏷️ created @Artists · 🏷️ gave you @Gamer" in reply.content
    changes = [
        *requests(discord_fake, "POST", f"/guilds/{guild.id}/roles"),
        *requests(discord_fake, "PUT", f"/members/{mod.id}/roles/{gamer.id}"),
    ]
    assert len(changes) == 2 and {r.reason for r in changes} == {reason(mod)}

    await run(mod, [("take_role", {"role": "@Gamer"})])
    assert responses(gemini_fake)["take_role"] == {"role": "Gamer", "taken": True}
    assert gamer not in guild.members[mod.id].roles

    roles_before = len(guild.roles)
    final = await run(
        mod,
        [("create_role", {"name": "Boss", "permissions": ["administrator"]})],
        text="I can't make an admin role.",
    )
    refused = responses(gemini_fake)["create_role"]["refused"]
    assert "would grant Administrator" in refused
    assert final.content == "I can't make an admin role."
    assert len(guild.roles) == roles_before

    await run(mod, [("give_role", {"role": "VIP"})])
    assert "not below the bot's highest role" in responses(gemini_fake)["give_role"]["refused"]
    await run(mod, [("give_role", {"role": "Senior"})])
    assert "not below your highest role" in responses(gemini_fake)["give_role"]["refused"]
    await run(mod, [("give_role", {"role": "Mods"})])
    assert "would grant Kick Members" in responses(gemini_fake)["give_role"]["refused"]
    await run(mod, [("give_role", {"role": "@everyone"})])
    assert "everyone's role" in responses(gemini_fake)["give_role"]["refused"]
    assert not {vip, senior, mods} & set(guild.members[mod.id].roles)

    # Nobody else: the tool takes no member, and naming one is rejected before anything runs.
    give = next(
        d
        for t in gemini_fake.requests[-1].json["tools"]
        for d in t.get("functionDeclarations", [])
        if d["name"] == "give_role"
    )
    assert set(
        (give.get("parametersJsonSchema") or give["parameters_json_schema"])["properties"]
    ) == {"role"}
    await run(mod, [("give_role", {"role": "Gamer", "member": f"<@{member.id}>"})])
    assert "Bad arguments" in responses(gemini_fake)["give_role"]["error"]
    assert gamer not in guild.members[member.id].roles
    assert not requests(discord_fake, "PUT", f"/members/{member.id}/roles/{gamer.id}")

    await run(member, [("give_role", {"role": "Gamer"})])
    assert "needs the Manage Roles permission" in responses(gemini_fake)["give_role"]["refused"]
    assert gamer not in guild.members[member.id].roles


async def test_a_role_that_grants_power_in_a_channel_is_not_handed_out(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """A role with no permission of its own can still grant moderation through a
    channel's overwrite; a role that only opens a channel to read stays harmless."""
    helpers = guild.add_role("Helpers", 0, position=1)
    gamers = guild.add_role("Gamers", 0, position=1)
    moderate = discord.Permissions(manage_messages=True, view_channel=True).value
    guild.set_overwrite(guild.add_text_channel("support"), helpers.id, allow=moderate, member=False)
    opens = discord.Permissions(view_channel=True, send_messages=True).value
    guild.set_overwrite(guild.add_text_channel("games"), gamers.id, allow=opens, member=False)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(mod, [("give_role", {"role": "Helpers"}), ("give_role", {"role": "Gamers"})])

    (_, refused), (_, given) = gemini_fake.requests[-1].function_responses
    assert refused["refused"].startswith(
        "Refused: @Helpers in #support would grant Manage Messages."
    )
    assert given == {"role": "Gamers", "given": True}
    assert helpers not in guild.members[mod.id].roles
    assert gamers in guild.members[mod.id].roles


async def test_refused_without_the_permission_and_when_the_bot_lacks_it(
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

    reply = await run(
        member,
        [("create_channel", {"name": "mine"})],
        text="You need Manage Channels for that, sorry.",
    )
    assert responses(gemini_fake)["create_channel"] == {
        "refused": "alice needs the Manage Channels permission for that."
    }
    assert reply.content == "You need Manage Channels for that, sorry."
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")

    guild.add_member(discord_fake.bot_user, permissions=BASIC)  # the bot loses its admin role
    await run(mod, [("create_channel", {"name": "mine"})])
    assert responses(gemini_fake)["create_channel"] == {
        "refused": "The bot needs the Manage Channels permission for that."
    }
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")
    assert not any(c.name == "mine" for c in guild.channels.values())


async def test_a_private_thread_is_found_only_for_those_in_it_and_thread_managers(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    hidden = guild.add_thread(guild.text, "secret-plans", discord_fake.owner, type=PRIVATE_THREAD)
    guild.add_thread(guild.text, "my-plans", mod, type=PRIVATE_THREAD)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        mod,
        [
            ("set_slowmode", {"seconds": 30, "channel": "secret-plans"}),
            ("set_slowmode", {"seconds": 30, "channel": f"<#{hidden.id}>"}),
            ("set_slowmode", {"seconds": 30, "channel": "my-plans"}),
        ],
    )
    # The refusal is the one for a name that does not exist: it confirms nothing.
    assert [r for _, r in gemini_fake.requests[-1].function_responses] == [
        {"refused": "There is no channel 'secret-plans' here that mod can see."},
        {"refused": f"There is no channel '<#{hidden.id}>' here that mod can see."},
        {"refused": "mod needs the Manage Threads permission in #my-plans."},
    ]
    assert hidden.rate_limit_per_user == 0

    guild.add_member(mod, permissions=MODERATOR | discord.Permissions(manage_threads=True).value)
    await run(mod, [("set_slowmode", {"seconds": 30, "channel": "secret-plans"})])
    assert responses(gemini_fake)["set_slowmode"] == {
        "channel": f"<#{hidden.id}>",
        "slowmode_seconds": 30,
    }
    assert hidden.rate_limit_per_user == 30


async def test_a_channel_overwrite_does_not_reach_server_wide_actions(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Roles and new channels belong to the server: Manage Roles or Manage Channels in one
    channel only (a ticket's owner) is not enough for them, as Discord itself rules."""
    manage = discord.Permissions(manage_channels=True, manage_roles=True).value
    insiders = guild.add_role("Insiders", discord.Permissions(send_messages=True).value, position=1)
    ticket = guild.add_text_channel("ticket-alice")
    guild.set_overwrite(ticket, member.id, allow=manage, member=True)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    server_wide = [
        ("give_role", {"role": "Insiders"}),
        ("create_role", {"name": "Spam"}),
        ("create_channel", {"name": "spam"}),
    ]

    await run(member, [*server_wide, ("take_role", {"role": "Insiders"})], channel=ticket)
    assert responses(gemini_fake) == {
        "give_role": {"refused": "alice needs the Manage Roles permission for that."},
        "create_role": {"refused": "alice needs the Manage Roles permission for that."},
        "create_channel": {"refused": "alice needs the Manage Channels permission for that."},
        "take_role": {"refused": "alice needs the Manage Roles permission for that."},
    }
    assert insiders not in guild.members[member.id].roles
    assert not any(r.name == "Spam" for r in guild.roles.values())
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")

    # In the ticket itself the overwrite is what counts.
    await run(
        member,
        [("set_slowmode", {"seconds": 10}), ("rename_channel", {"name": "done"})],
        channel=ticket,
    )
    assert ticket.rate_limit_per_user == 10 and ticket.name == "done"

    guild.add_member(member, permissions=BASIC | manage)  # now server-wide
    await run(member, server_wide, channel=ticket)
    got = responses(gemini_fake)
    assert got["give_role"] == {"role": "Insiders", "given": True}
    assert got["create_role"]["created"] == "Spam"
    assert got["create_channel"]["name"] == "spam"
    assert insiders in guild.members[member.id].roles
    assert any(c.name == "spam" for c in guild.channels.values())


async def test_a_channel_in_a_category_needs_manage_channels_there(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    hangout = guild.add_category("Hangout")
    guild.add_category("Staff")
    guild.set_overwrite(
        hangout, member.id, allow=discord.Permissions(manage_channels=True).value, member=True
    )
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(member, [("create_channel", {"name": "board games", "category": "hangout"})])
    assert responses(gemini_fake)["create_channel"]["category"] == "Hangout"
    made = next(c for c in guild.channels.values() if c.name == "board-games")
    assert made.parent_id == hangout.id

    await run(member, [("create_channel", {"name": "secret", "category": "staff"})])
    assert responses(gemini_fake)["create_channel"] == {
        "refused": "alice needs the Manage Channels permission in #Staff."
    }
    await run(member, [("create_channel", {"name": "loose"})])
    assert responses(gemini_fake)["create_channel"] == {
        "refused": "alice needs the Manage Channels permission for that."
    }
    assert len(requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")) == 1


async def test_a_permission_taken_away_after_asking_no_longer_counts(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """The bot hears of no member's role change (no members intent), and a reply can run
    long after its message: a tool reads the asker's roles when it runs."""
    manage = discord.Permissions(manage_channels=True, manage_roles=True).value
    managers = guild.add_role("Managers", manage, position=1)
    guild.add_role("Gamer", discord.Permissions(send_messages=True).value, position=1)
    guild.give_role(member, managers)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    await run(member, [("create_channel", {"name": "first"})])
    assert responses(gemini_fake)["create_channel"]["name"] == "first"

    await run(
        member,
        [
            ("create_channel", {"name": "second"}),
            ("set_slowmode", {"seconds": 60}),
            ("give_role", {"role": "Gamer"}),
        ],
        meanwhile=lambda: guild.take_role(member, managers),  # demoted while the AI works
    )
    assert responses(gemini_fake) == {
        "create_channel": {"refused": "alice needs the Manage Channels permission for that."},
        "set_slowmode": {"refused": "alice needs the Manage Channels permission in #general."},
        "give_role": {"refused": "alice needs the Manage Roles permission for that."},
    }
    assert not any(c.name == "second" for c in guild.channels.values())
    assert guild.text.rate_limit_per_user == 0
    assert [r.name for r in guild.members[member.id].roles] == ["alice"]

    await run(
        member,
        [("create_channel", {"name": "third"})],
        meanwhile=lambda: guild.members.pop(member.id),  # left (no event without the intent)
    )
    assert responses(gemini_fake)["create_channel"] == {
        "refused": "alice is no longer a member of this server."
    }


async def test_the_bot_needs_server_wide_permissions_too(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    guild.add_role("Insiders", discord.Permissions(send_messages=True).value, position=1)
    guild.add_member(discord_fake.bot_user, permissions=BASIC)  # the bot loses its admin role
    manage = discord.Permissions(manage_channels=True, manage_roles=True).value
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, allow=manage, member=True)
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)

    await run(
        mod,
        [
            ("give_role", {"role": "Insiders"}),
            ("create_role", {"name": "Spam"}),
            ("create_channel", {"name": "spam"}),
        ],
    )
    assert responses(gemini_fake) == {
        "give_role": {"refused": "The bot needs the Manage Roles permission for that."},
        "create_role": {"refused": "The bot needs the Manage Roles permission for that."},
        "create_channel": {"refused": "The bot needs the Manage Channels permission for that."},
    }
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/roles")
    assert not requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")
    assert not [r for r in discord_fake.requests if r.method == "PUT" and "/roles/" in r.path]


async def test_what_was_done_shows_when_the_reply_then_fails(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings(gemini_max_retries=0, **UNLIMITED))
    await server_on(discord_fake, guild)
    gemini_fake.reply_function_calls([("create_channel", {"name": "events"})])
    gemini_fake.fail(503)  # the round after the call: no model answers
    reply = await answer(discord_fake, guild.text, mod, "make an events channel")

    assert any(c.name == "events" for c in guild.channels.values())
    assert reply.content == (
        "-# 📁 created #events\n\n*⚠️ The AI is not answering right now; please try again later.*"
    )


async def test_one_reply_makes_a_bounded_number_of_changes(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """One message can't make dozens of channels: a turn runs `MAX_CALLS` calls, a reply
    makes `MAX_CHANGES` changes over all its rounds, and never the same one twice."""
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    teams = [("create_channel", {"name": f"team-{n}"}) for n in range(40)]
    gemini_fake.reply_function_calls([("create_channel", {"name": "news"})] * 2 + teams)
    gemini_fake.reply_function_calls([("create_channel", {"name": "late"})])
    gemini_fake.reply("Made some of them.")
    await answer(discord_fake, guild.text, mod, "make a news channel and 40 team channels")

    made = [r.json["name"] for r in requests(discord_fake, "POST", f"/guilds/{guild.id}/channels")]
    assert made == ["news", *(f"team-{n}" for n in range(MAX_CHANGES - 1))]
    results = [result for _, result in gemini_fake.requests[-1].function_responses]
    assert results[1] == {"refused": REPEATED}
    assert results[MAX_CHANGES + 1 : MAX_CALLS] == [{"refused": TOO_MANY_CHANGES}]
    assert results[MAX_CALLS:-1] == [{"refused": TOO_MANY_CALLS}] * (42 - MAX_CALLS)
    assert results[-1] == {"refused": TOO_MANY_CHANGES}, "the next round too"


async def test_audit_lists_actions_for_managers_only(
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
    await run(mod, [("create_channel", {"name": "games"})])
    for _ in range(2):  # anyone can ask for what they may not do, over and over
        await run(member, [("set_slowmode", {"seconds": n}) for n in range(MAX_CALLS)])

    audit = await slash(discord_fake, guild, discord_fake.owner, "audit")
    embed = audit.embeds[0]
    (made,) = embed["description"].splitlines()  # the flood hides no change made
    assert f"<@{mod.id}> in <#{guild.text.id}>: `create_channel`" in made
    assert '"games"' in made and "✅ 📁 created #games" in made
    (refused,) = embed["fields"]
    assert refused["name"] == "Refused or failed"
    lines = refused["value"].splitlines()
    assert 0 < len(lines) <= 5 and f'"seconds": {MAX_CALLS - 1}' in lines[0]  # newest first
    for line in lines:
        assert f"<@{member.id}> in <#{guild.text.id}>: `set_slowmode`" in line
        assert "❌ refused: alice needs the Manage Channels permission" in line
    assert audit.allowed_mentions is not None and audit.allowed_mentions["parse"] == []

    denied = await slash(discord_fake, guild, member, "audit")
    assert "Manage Server" in denied.content
    assert not denied.embeds


async def test_info_tools(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    guild.add_text_channel("rules")
    hidden = discord.Permissions(view_channel=True).value
    guild.set_overwrite(guild.add_text_channel("staff"), guild.id, deny=hidden, member=False)
    guild.set_overwrite(guild.add_voice_channel("Staff Room"), guild.id, deny=hidden, member=False)
    games = guild.add_category("Games")
    # Discord numbers channels within their category: positions repeat across the server.
    guild.add_channel("chess", TEXT_CHANNEL, parent_id=games.id).position = 0
    await start_bot(ai_settings(**UNLIMITED))

    await run(
        mod,
        [
            ("server_info", {}),
            ("list_channels", {}),
            ("my_roles", {}),
            ("member_count", {}),
            ("current_time", {"timezone": "Europe/Paris"}),
        ],
    )

    got = responses(gemini_fake)
    assert got["server_info"]["name"] == "Test Guild"
    assert got["server_info"]["text_channels"] == 3, "hidden channels are not counted"
    assert got["server_info"]["voice_channels"] == 1
    names = [c["name"] for c in got["list_channels"]["channels"]]
    assert names == ["general", "rules", "General", "chess"], "in the order Discord shows"
    assert got["my_roles"] == {"roles": ["mod"]}
    assert got["member_count"] == {"members": len(guild.members)}
    assert got["current_time"]["timezone"] == "Europe/Paris"
