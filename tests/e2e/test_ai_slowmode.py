"""AI chat in a channel with slowmode: Discord holds the bot's next message there too
(unless it may manage messages or the channel), so a long reply can't go on in a second
message; it says where it stops instead of waiting out the slowmode."""

from __future__ import annotations

from collections.abc import Callable

import discord
import pytest

from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.discord_models import DEFAULT_PERMS, TEXT_CHANNEL
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini

NOTE = "\n\n*⚠️ the rest is cut off: slowmode holds my next message*"
LONG = "This sentence explains a point in some detail. " * 80  # 3,760 characters


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


async def stored_rows(bot, channel_id: int) -> list[tuple[str, str, str | None]]:
    rows = await bot.db.fetchall(
        "SELECT role, content, incomplete FROM ai_messages WHERE channel_id = ? ORDER BY id",
        (channel_id,),
    )
    return [tuple(row) for row in rows]


@pytest.mark.parametrize("place", ["channel", "thread"])
async def test_a_long_reply_under_slowmode_stays_one_message_and_says_the_rest_is_cut_off(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    place: str,
) -> None:
    """A second message would be refused (429, code 20016) for a minute, the reply shown
    as still being written all that while: the first message says the rest is cut off, and
    the history holds what it shows, as cut off by slowmode."""
    if place == "thread":
        slow = guild.add_thread(guild.text, "slow", member, rate_limit_per_user=60)
    else:
        slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    gemini_fake.reply([LONG[i : i + 500] for i in range(0, len(LONG), 500)])
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(slow, member, f"{mention(discord_fake)} explain")

    def cut_off() -> FakeMessage | None:
        sent = discord_fake.messages_in(slow, from_bot=True)
        return sent[-1] if sent and sent[-1].content.endswith(NOTE) else None

    message = await discord_fake.wait_for(cut_off, timeout=10)
    assert message is not None
    assert len(message.content) <= 2000
    shown = message.content.removesuffix(NOTE)
    assert LONG.startswith(shown) and len(shown) > 1500
    assert discord_fake.messages_in(slow, from_bot=True) == [message]

    async def stored() -> list[tuple[str, str, str | None]]:
        return await stored_rows(bot, slow.id)

    await eventually(stored, equals=[("user", "explain", None), ("model", shown, "slowmode")])
    posts = [
        r
        for r in discord_fake.requests
        if r.method == "POST" and r.path.endswith(f"/channels/{slow.id}/messages")
    ]
    assert len(posts) == 1, "no second message tried (and held)"
    assert "only one message at a time" in gemini_fake.requests[-1].system_text


async def test_a_bot_that_may_manage_messages_is_not_held_by_slowmode(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """With Manage Messages slowmode spares the bot: the long reply goes on whole."""
    slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    manage = discord.Permissions(DEFAULT_PERMS)
    manage.manage_messages = True
    guild.add_member(discord_fake.bot_user, permissions=manage.value)
    gemini_fake.reply([LONG[i : i + 500] for i in range(0, len(LONG), 500)])
    await start_bot(ai_settings())
    await discord_fake.send_message(slow, member, f"{mention(discord_fake)} explain")

    def whole() -> list[FakeMessage] | None:
        sent = discord_fake.messages_in(slow, from_bot=True)
        done = len(sent) == 2 and not sent[-1].content.endswith("⌛")
        return sent if done else None

    sent = await discord_fake.wait_for(whole, timeout=10)
    assert sent is not None
    assert " ".join(m.content for m in sent).split() == LONG.split()
    assert "only one message at a time" not in gemini_fake.requests[-1].system_text
