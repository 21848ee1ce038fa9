"""No output of the model can ping @everyone, @here, a role or a user, on any path.

tests/e2e/test_ai_chat.py checks one short reply and its edits. Here the model's
hostile text goes through every way a reply reaches Discord (a reply split over
several messages, `/chat` through an interaction and its follow-ups, a stream cut
off mid-way, a DM), and every message POST and PATCH the fake Discord saw is checked,
along with the pings the fake computed for every message the bot left.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from config import Settings
from tests.conftest import BASIC, StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeInteraction, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.reliability.conftest import answered, mention, replies_to

pytestmark = pytest.mark.reliability


def hostile(role_id: int, user_id: int) -> str:
    return f"Hey @everyone and @here, look <@&{role_id}> and <@{user_id}> <@!{user_id}>! "


def answered_in_full(interaction: FakeInteraction) -> bool:
    return interaction.original is not None and not interaction.original.loading


def sent_content(body: Any) -> tuple[str, dict[str, Any] | None] | None:
    """(content, allowed_mentions) of a request that sets message content, else None."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("data"), dict):  # an interaction callback
        body = body["data"]
    if "content" not in body:
        return None
    return body["content"] or "", body.get("allowed_mentions")


async def test_hostile_model_output_pings_nobody_on_any_path(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    role_id = guild.members[member.id].roles[0].id
    text = hostile(role_id, member.id)
    long_reply = [text * 10 for _ in range(4)]  # about 3000 characters: two messages
    gemini_fake.reply(long_reply, chunk_delay=0.05)
    gemini_fake.reply([text * 2, text * 30], chunk_delay=0.05)  # for /chat: a follow-up too
    gemini_fake.fail_stream_after([text, text], status=500)
    gemini_fake.reply([text, text], chunk_delay=0.05)  # in a DM
    await start_bot(ai_settings())

    first = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} go")
    await discord_fake.wait_for(
        lambda: (
            len(parts := replies_to(discord_fake, first)) >= 2
            and not any(m.content.endswith("⌛") for m in parts)
        )
    )

    chat = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "go on"})
    await discord_fake.wait_for(
        lambda: chat.followups and not any(m.content.endswith("⌛") for m in chat.followups)
    )

    cut = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} more")
    await discord_fake.wait_for(
        lambda: any("⚠️" in m.content for m in replies_to(discord_fake, cut))
    )
    dm = discord_fake.open_dm(member)
    private = await discord_fake.send_message(dm, member, "and here?")
    await answered(discord_fake, private)

    checked = 0
    for request in discord_fake.requests:
        if request.method not in ("POST", "PATCH"):
            continue
        found = sent_content(request.json)
        if found is None:
            continue
        content, allowed = found
        where = f"{request.method} {request.path}: {content[:60]!r}"
        assert allowed is not None, f"no allowed_mentions in {where}"
        assert "everyone" not in allowed.get("parse", []), where
        assert "roles" not in allowed.get("parse", []) and not allowed.get("roles"), where
        if "@everyone" in content:  # the model's text: it pings no one at all
            assert allowed.get("parse") == [] and not allowed.get("users"), where
            assert not allowed.get("replied_user"), where
            checked += 1
    assert checked >= 8, "replies, edits, follow-ups, the cut-off note and the DM were checked"

    bot_messages = [m for m in discord_fake.messages.values() if m.from_bot]
    for message in bot_messages:
        assert not message.mention_everyone, message.content[:80]
        assert message.mention_roles == [], message.content[:80]
    ai_messages = [m for m in bot_messages if "@everyone" in m.content]
    assert len(ai_messages) >= 6
    assert all(m.mentions == [] for m in ai_messages), "not even the user it answers"


async def test_names_people_gave_ping_nobody_when_the_bot_repeats_them(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A character's name is server content: the bot's confirmations repeat it, and a
    user mention in it must not notify that user."""
    await start_bot(ai_settings())
    owner = discord_fake.owner
    victim = discord_fake.add_user("victim")
    guild.add_member(victim, permissions=BASIC)
    name = f"<@{victim.id}> fan"
    for command, sub, options in (
        ("character", "create", {"name": name, "description": "x"}),
        ("character", "create", {"name": "Bren", "description": "y"}),
        ("character", "edit", {"name": name, "personality": "calm"}),
        ("scene", "start", {"characters": "Bren"}),
        ("scene", "add", {"character": name}),
        ("scene", "remove", {"character": name}),
        ("character", "delete", {"name": name}),
    ):
        interaction = await discord_fake.invoke_slash(
            guild.text, owner, command, options, subcommand=sub
        )
        await interaction.wait_response()
        await discord_fake.wait_for(partial(answered_in_full, interaction))

    repeated = 0
    for request in discord_fake.requests:
        found = sent_content(request.json) if request.method in ("POST", "PATCH") else None
        if found is None or f"<@{victim.id}>" not in found[0]:
            continue
        content, allowed = found
        assert allowed is not None and allowed.get("parse") == [], content
        assert not allowed.get("users") and not allowed.get("replied_user"), content
        repeated += 1
    assert repeated >= 4, "the edit, add, remove and delete confirmations name the character"
