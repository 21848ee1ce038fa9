"""Rate limits count only messages the AI takes: one refused otherwise costs nothing."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import discord
import pytest

from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


async def ask(fake: FakeDiscord, guild: FakeGuild, user: FakeUser, text: str) -> FakeMessage:
    """Mention the bot with `text`; return its first answer (a reply or a notice), done."""
    sent = await fake.send_message(guild.text, user, f"{mention(fake)} {text}")

    def answered() -> FakeMessage | None:
        replies = [m for m in fake.messages_in(guild.text) if m.reference == sent.id]
        return replies[0] if replies and not replies[0].content.endswith("⌛") else None

    return await fake.wait_for(answered, timeout=10)


async def test_a_message_refused_as_the_queue_is_full_uses_up_no_rate_limit(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(["slow ", "reply"], chunk_delay=0.5)
    gemini_fake.reply("second")
    gemini_fake.reply("third")
    await start_bot(ai_settings(ai_channel_queue_size=1, ai_user_messages_per_minute=3))
    for i in range(3):  # answered, queued, refused: the queue is full
        await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} q{i}")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2, timeout=10)
    answer = await ask(discord_fake, guild, member, "my third")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 3, timeout=10)
    assert "faster than I can" not in answer.content


async def test_a_message_whose_files_fail_uses_up_no_rate_limit(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def cut(self: discord.Attachment, **kwargs: object) -> bytes:
        raise aiohttp.ClientPayloadError("Response payload is not completed")

    monkeypatch.setattr(discord.Attachment, "read", cut)
    await start_bot(ai_settings(ai_user_messages_per_minute=1))
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} read this",
        attachments=[{"filename": "notes.txt", "content_type": "text/plain", "data": b"hello"}],
    )
    refused = await discord_fake.wait_for_message(guild.text)
    assert refused.content == "I couldn't download `notes.txt`."
    gemini_fake.reply("Sure, what is it?")
    answer = await ask(discord_fake, guild, member, "let me paste it instead")
    assert answer.content == "Sure, what is it?"
