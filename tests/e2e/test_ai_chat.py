"""AI chat end to end: the real bot, discord.py and google-genai against both fakes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import discord
import pytest
from PIL import Image

from cogs.ai.chat import MAX_REPLY_CHARS
from cogs.ai.cog import AI, SHUTDOWN_GRACE
from cogs.ai.records import Turn
from cogs.ai.streaming import FINALISE_TIMEOUT
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.fakes.clock import FakeClock
from tests.fakes.discord_models import DEFAULT_PERMS, PRIVATE_THREAD
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.memory.records import Scope

FENCE_LINE = re.compile(r"^```", re.MULTILINE)
ROOT = Path(__file__).resolve().parents[2]
SEND_MESSAGES = discord.Permissions(send_messages=True).value


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


def final_text(messages: list[FakeMessage]) -> str:
    return "".join(m.content for m in messages)


def pings_nobody(allowed: dict | None) -> bool:
    return allowed is not None and allowed.get("parse") == [] and not allowed.get("replied_user")


async def wait_reply_done(
    fake: FakeDiscord, channel, *, count: int = 1, after: int = 0
) -> list[FakeMessage]:
    """The bot's messages in `channel` after index `after` once none shows the writing marker."""

    def done() -> list[FakeMessage] | None:
        messages = fake.messages_in(channel)[after:]
        if len(messages) >= count and not any(m.content.endswith("⌛") for m in messages):
            return messages
        return None

    return await fake.wait_for(done, timeout=15)


async def ask(fake: FakeDiscord, channel, user: FakeUser, text: str) -> FakeMessage:
    """Mention the bot with `text`; return its finished reply (the first message of it)."""
    sent = await fake.send_message(channel, user, f"{mention(fake)} {text}")

    def finished() -> FakeMessage | None:
        replies = [m for m in fake.messages_in(channel) if m.reference == sent.id]
        return replies[0] if replies and not replies[0].content.endswith("⌛") else None

    return await fake.wait_for(finished, timeout=10)


async def stored_count(bot, channel_id: int) -> int:
    return await bot.db.fetchval(
        "SELECT count(*) FROM ai_messages WHERE channel_id = ?", (channel_id,)
    )


async def stored_rows(bot, channel_id: int) -> list[tuple[str, str, str | None]]:
    rows = await bot.db.fetchall(
        "SELECT role, content, incomplete FROM ai_messages WHERE channel_id = ? ORDER BY id",
        (channel_id,),
    )
    return [tuple(row) for row in rows]


async def test_mention_streams_a_reply(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    chunks = ["Hello Alice, ", "this reply ", "arrives in ", "four pieces."]
    gemini_fake.reply(chunks, chunk_delay=0.15)
    await start_bot(ai_settings())
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi there")
    (reply,) = await wait_reply_done(discord_fake, guild.text)

    assert reply.content == "".join(chunks)
    assert len(reply.edits) >= 2, reply.history
    assert reply.history[0].endswith("⌛") and reply.history[0].startswith("Hello Alice")
    assert reply.reference == sent.id
    assert any(channel == guild.text.id for channel, _ in discord_fake.typing)
    request = gemini_fake.requests[-1]
    assert request.method == "streamGenerateContent"
    assert request.last_user_text.endswith("alice: hi there")
    assert "Discord server" in request.system_text


async def test_long_reply_with_code_is_split_cleanly(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    prose = "This sentence explains the code below in some detail. " * 20
    code = "\n".join(f"    value_{i} = compute({i})  # step {i}" for i in range(70))
    text = f"{prose}\n\n```python\ndef run():\n{code}\n```\n\n{prose}"
    assert 4800 < len(text) < 5200
    gemini_fake.reply([text[i : i + 700] for i in range(0, len(text), 700)], chunk_delay=0.02)
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} show code")
    messages = await wait_reply_done(discord_fake, guild.text, count=3)

    assert len(messages) == 3
    for message in messages:
        assert len(message.content) <= 2000
        assert len(FENCE_LINE.findall(message.content)) % 2 == 0, message.content
    # The code block spans a split: it is closed, then re-opened with its language.
    assert messages[0].content.endswith("\n```") or messages[1].content.endswith("\n```")
    assert messages[1].content.startswith("```python\n") or messages[2].content.startswith(
        "```python\n"
    )

    def strip(value: str) -> str:
        return re.sub(r"\s+|```(python)?", "", value)

    assert strip("".join(m.content for m in messages)) == strip(text)


async def test_a_reply_that_goes_on_and_on_stops_at_the_length_limit(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Asked to "count to a million", the model would write on for a hundred messages: the
    reply stops after about ten, says so, and the history holds what was shown."""
    gemini_fake.reply(["one more line of counting.\n" * 100] * 40)  # 108,000 characters
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} count")
    note = "\n\n*⚠️ reply cut at the length limit*"

    def cut_off() -> list[FakeMessage] | None:
        sent = discord_fake.messages_in(guild.text)
        return sent if sent and sent[-1].content.endswith(note) else None

    messages = await discord_fake.wait_for(cut_off, timeout=30)
    assert messages is not None
    assert len(messages) <= MAX_REPLY_CHARS // 1900 + 1
    shown = final_text(messages).removesuffix(note)
    assert 0.9 * MAX_REPLY_CHARS < len(shown) <= MAX_REPLY_CHARS

    async def incomplete() -> list[str | None]:
        return [row[2] for row in await stored_rows(bot, guild.text.id)]

    await eventually(incomplete, equals=[None, "length"])


async def test_deleting_the_first_message_of_a_long_reply_takes_the_reply_out_of_the_history(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    text = "This sentence explains a point in some detail. " * 100
    gemini_fake.reply([text[i : i + 700] for i in range(0, len(text), 700)], chunk_delay=0.02)
    settings = ai_settings(
        memory_enabled=True, embedding_model="hashing", memory_consolidation_minutes=0
    )
    bot = await start_bot(settings)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} explain")
    first, *_ = await wait_reply_done(discord_fake, guild.text, count=3)
    assert [role for role, _, _ in await stored_rows(bot, guild.text.id)] == ["user", "model"]
    memory, scope = bot.memory, Scope("guild", guild.id)
    assert memory is not None

    async def remembered() -> list[str]:
        await memory.flush()  # the exchange is handed to memory once the reply is stored
        return [m.text for m in await memory.memories_of(scope, member.id)]

    assert "alice: explain" in (await eventually(remembered))[0]

    discord_fake._delete_message(first)  # a moderator deletes the start of the reply
    await eventually(lambda: stored_rows(bot, guild.text.id), equals=[("user", "explain", None)])
    await eventually(remembered, equals=[])  # the memory of the exchange goes too


async def test_a_reply_that_fills_one_message_stays_one_message(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    text = ("word " * 400)[:1996] + "end."  # no room left for the writing marker
    assert len(text) == 2000
    gemini_fake.reply([text[:1000], text[1000:]], chunk_delay=0.1)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} fill it")
    (reply,) = await wait_reply_done(discord_fake, guild.text)
    await discord_fake.wait_for(lambda: reply.content == text)
    assert discord_fake.messages_in(guild.text) == [reply]
    assert all(len(shown) <= 2000 for shown in reply.history)
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "fill it", None), ("model", text, None)],
    )


async def test_model_output_pings_nobody(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    role_id = 1234567890123
    gemini_fake.reply(
        ["Hey @everyone and @here, ", f"also <@&{role_id}> and <@{member.id}>!"], chunk_delay=0.1
    )
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} greet everybody")
    (reply,) = await wait_reply_done(discord_fake, guild.text)
    assert "@everyone" in reply.content
    assert pings_nobody(reply.allowed_mentions)
    assert reply.edits and all(pings_nobody(edit.get("allowed_mentions")) for edit in reply.edits)


async def test_rate_limited_by_google_then_answers(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(429, retry_delay=0.2)
    gemini_fake.reply("Sorry for the wait.")
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello")
    (reply,) = await wait_reply_done(discord_fake, guild.text)
    assert reply.content == "Sorry for the wait."
    assert len(gemini_fake.requests) == 2
    assert gemini_fake.requests[1].time - gemini_fake.requests[0].time >= 0.2
    gemini_fake.reply("Next.")
    barrier = await ask(discord_fake, guild.text, member, "and now?")  # same channel: after
    assert discord_fake.messages_in(guild.text) == [reply, barrier], "one reply to the first"


async def test_breaker_opens_on_repeated_503_and_recovers(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(503, times=2)
    clock = FakeClock()
    bot = await start_bot(
        ai_settings(ai_breaker_threshold=2, gemini_max_retries=1, ai_breaker_reset=60.0),
        clock=clock,
    )
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} one")
    first = await discord_fake.wait_for_message(guild.text)
    assert re.fullmatch(r"AI is unavailable, try again in \d+ s\.", first.content)
    assert len(gemini_fake.requests) == 2
    assert bot.gemini.breaker.state == "open"

    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} two")
    second = await discord_fake.wait_for_message(guild.text, after=1)
    assert second.content.startswith("AI is unavailable")
    assert len(gemini_fake.requests) == 2, "an open breaker answers without calling Google"

    clock.advance(59)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} still?")
    still = await discord_fake.wait_for_message(guild.text, after=2)
    assert still.content.startswith("AI is unavailable"), "open until the reset time"
    clock.advance(1)
    gemini_fake.reply("Back again.")
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} three")
    third = await discord_fake.wait_for_message(guild.text, after=3)
    await discord_fake.wait_for(lambda: third.content == "Back again.")
    assert bot.gemini.breaker.state == "closed"


async def test_channels_run_concurrently_and_each_stays_ordered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    other = guild.add_text_channel("other")
    for _ in range(3):
        gemini_fake.reply(["part one, ", "part two, ", "done."], chunk_delay=0.25)
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} first A")
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} second A")
    await discord_fake.send_message(other, member, f"{mention(discord_fake)} only B")
    await wait_reply_done(discord_fake, guild.text, count=2)
    await wait_reply_done(discord_fake, other, count=1)

    by_text = {r.last_user_text.rsplit(": ", 1)[-1]: r for r in gemini_fake.requests}
    first_a, second_a, only_b = by_text["first A"], by_text["second A"], by_text["only B"]
    stream_time = 0.7  # three chunks 0.25 s apart
    assert only_b.time - first_a.time < stream_time / 2, "B does not wait for A"
    assert second_a.time - first_a.time >= stream_time, "A's second message waits for the first"
    assert "first A" in json.dumps(second_a.contents), "and sees it in its history"
    a_replies = discord_fake.messages_in(guild.text)
    assert [m.content for m in a_replies] == ["part one, part two, done."] * 2
    assert a_replies[0].edited_timestamp <= a_replies[1].timestamp


async def test_history_persists_and_reset_clears_it(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings()
    bot = await start_bot(settings)
    gemini_fake.reply("Nice to meet you, Alice.")
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} I love kayaking")
    await wait_reply_done(discord_fake, guild.text)
    await eventually(lambda: stored_count(bot, guild.text.id), equals=2)
    await bot.close()

    await start_bot(settings)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} what do I love?")
    await wait_reply_done(discord_fake, guild.text, after=1)
    remembered = json.dumps(gemini_fake.requests[-1].contents)
    assert "I love kayaking" in remembered and "Nice to meet you, Alice." in remembered

    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", subcommand="reset"
    )
    response = await discord_fake.answer(interaction)
    assert "Forgot this channel's conversation (4 messages)" in response.content
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} again?")
    await wait_reply_done(discord_fake, guild.text, after=3)
    assert "kayaking" not in json.dumps(gemini_fake.requests[-1].contents)


async def test_a_reply_to_a_conversation_reset_meanwhile_is_not_stored(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A reply written from a conversation `/ai reset` forgot while it waited for its
    first words would bring the forgotten conversation back into the fresh history."""
    bot = await start_bot(ai_settings())
    await ask(discord_fake, guild.text, member, "I love kayaking")
    gemini_fake.reply(["You love kayaking", "!"], chunk_delay=1.0)  # slow first words
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} what do I love?")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) >= 2 or None)
    reset = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", subcommand="reset"
    )
    assert "(2 messages)" in (await discord_fake.answer(reset)).content
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "You love kayaking!", timeout=10
    )
    await ask(discord_fake, guild.text, member, "hello again")
    assert "kayaking" not in json.dumps(gemini_fake.requests[-1].contents)
    assert [content for _, content, _ in await stored_rows(bot, guild.text.id)] == [
        "hello again",
        "ok",
    ]


async def test_a_message_edited_or_deleted_while_it_waits_is_answered_as_it_is_now(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Messages wait in their channel's queue while an earlier one is answered: an
    edit before their turn is what gets answered and stored, a deletion is not answered."""
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings())
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    edited = await discord_fake.send_message(guild.text, member, f"{at} my PIN is 4821")
    deleted = await discord_fake.send_message(guild.text, member, f"{at} my card is 4000")
    discord_fake.edit_by_author(edited, f"{at} my PIN is none of your business")
    discord_fake._delete_message(deleted)
    last = await ask(discord_fake, guild.text, member, "last")  # answered after both
    assert last.content == "ok"

    asked = [r.last_user_text for r in gemini_fake.requests]
    assert asked == ["alice: first", "alice: my PIN is none of your business", "alice: last"]
    assert not [m for m in discord_fake.messages_in(guild.text) if m.reference == deleted.id]
    stored = [content for role, content, _ in await stored_rows(bot, guild.text.id)]
    assert "4821" not in str(stored) and "4000" not in str(stored)
    assert "my PIN is none of your business" in stored


async def test_a_message_edited_or_deleted_while_it_is_answered_leaves_the_history(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Changed after its answer began but before the history held it: the history gets
    the change once it does."""
    gemini_fake.reply(["Let me ", "think."], chunk_delay=0.6)
    gemini_fake.reply(["Noted ", "that."], chunk_delay=0.6)
    bot = await start_bot(ai_settings())
    at = mention(discord_fake)
    edited = await discord_fake.send_message(guild.text, member, f"{at} my PIN is 4821")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    discord_fake.edit_by_author(edited, f"{at} my PIN is secret")
    await wait_reply_done(discord_fake, guild.text)
    deleted = await discord_fake.send_message(guild.text, member, f"{at} my card is 4000")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2 or None)
    discord_fake._delete_message(deleted)
    await wait_reply_done(discord_fake, guild.text, count=2)
    await ask(discord_fake, guild.text, member, "last")

    stored = [content for _, content, _ in await stored_rows(bot, guild.text.id)]
    assert stored == ["my PIN is secret", "Let me think.", "Noted that.", "last", "ok"]


async def test_failed_generation_is_not_stored(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(400, message="bad request")
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} secret plan")
    reply = await discord_fake.wait_for_message(guild.text)
    assert reply.content == "The AI could not process that message."
    assert await bot.db.fetchval("SELECT count(*) FROM ai_messages") == 0


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(400, "API_KEY_INVALID", id="invalid key"),
        pytest.param(403, None, id="key not allowed this API"),
    ],
)
async def test_a_key_google_refuses_is_blamed_on_the_owners_setting_not_the_message(
    status: int,
    reason: str | None,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(
        status, message="API key not valid. Please pass a valid API key.", reason=reason
    )
    await start_bot(ai_settings())
    reply = await ask(discord_fake, guild.text, member, "hello?")
    assert (
        reply.content
        == "The AI service refused the bot's API key; the bot's owner needs to check it."
    )
    assert len(gemini_fake.requests) == 1  # not retried: another try is refused the same


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty stream"),
        pytest.param(b'data: {"candidates": [\r\n\r\n', id="not JSON"),
        pytest.param(b"data: \xff\xfe\r\n\r\n", id="not UTF-8"),
    ],
)
async def test_an_unreadable_answer_is_retried(
    body: bytes,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.answer_raw(body)
    gemini_fake.reply("Here I am.")
    bot = await start_bot(ai_settings())
    reply = await ask(discord_fake, guild.text, member, "hello?")
    assert reply.content == "Here I am."
    assert len(gemini_fake.requests) == 2
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "hello?", None), ("model", "Here I am.", None)],
    )


async def test_slash_chat_says_when_no_answer_can_be_read(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    for _ in range(2):
        gemini_fake.answer_raw(b"")
    bot = await start_bot(ai_settings(gemini_max_retries=1))
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    assert (await interaction.wait_response())["type"] == 5  # deferred: "thinking…"
    # The "thinking" response is filled in with the error, not left thinking.
    await discord_fake.wait_for(
        lambda: interaction.original is not None and interaction.original.content, timeout=5
    )
    assert interaction.original.content == (
        "The AI is not answering right now; please try again later."
    )
    assert len(gemini_fake.requests) == 2
    assert await stored_rows(bot, guild.text.id) == []


async def test_a_bug_in_the_answer_path_still_gets_a_short_apology(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = await start_bot(ai_settings())

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.chats, "context", broken)  # a bug before any Gemini request
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi")
    apology = await discord_fake.wait_for_message(guild.text)
    assert apology.content == "Sorry, something went wrong on my side; please try again."
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    await interaction.wait_response()
    await discord_fake.wait_for(
        lambda: interaction.original is not None and interaction.original.content, timeout=5
    )
    assert interaction.original.content == apology.content, "not left thinking"
    failures = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert len(failures) == 2
    assert gemini_fake.requests == []


async def test_stream_cut_off_midway_is_marked_and_stored_as_incomplete(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail_stream_after(["The answer begins ", "and then"], status=500)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} go")
    (reply,) = await wait_reply_done(discord_fake, guild.text)
    await discord_fake.wait_for(lambda: "⚠️" in reply.content)
    assert reply.content.startswith("The answer begins and then")
    # What was shown is what the history holds, marked as cut off.
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "go", None), ("model", "The answer begins and then", "error")],
    )


async def test_a_stream_that_ends_without_a_finish_reason_is_cut_off(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Gemini ends every answer with a finish reason; one that ends without was cut."""
    gemini_fake.reply(["The answer begins ", "and then"], finish_reason=None)
    bot = await start_bot(ai_settings())
    reply = await ask(discord_fake, guild.text, member, "go")
    await discord_fake.wait_for(lambda: "⚠️" in reply.content)
    assert reply.content == (
        "The answer begins and then\n\n*⚠️ The reply was cut off by an AI error; please try again.*"
    )
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "go", None), ("model", "The answer begins and then", "error")],
    )


async def test_a_reply_cut_off_inside_a_code_block_closes_it_before_the_note(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    code = "Here is the script:\n```python\ndef main():\n    x = compute("
    gemini_fake.reply([code[:30], code[30:], ""], finish_reason="MAX_TOKENS")
    bot = await start_bot(ai_settings())
    reply = await ask(discord_fake, guild.text, member, "code")
    await discord_fake.wait_for(lambda: "⚠️" in reply.content)
    assert reply.content == code + "\n```\n\n*⚠️ reply cut at the length limit*"
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "code", None), ("model", code, "length")],
    )


async def test_a_reply_deleted_while_streaming_leaves_the_history(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(["First part ", "second part ", "end."], chunk_delay=0.5)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi")
    first = await discord_fake.wait_for_message(guild.text)
    assert first.content.endswith("⌛")
    discord_fake._delete_message(first)  # a moderator deletes the half-written reply
    # Deleted, it leaves the history; its next edit fails, and nothing is left "being
    # written" (the stream's own handling of such a failure: test_ai_streaming.py).
    await eventually(lambda: stored_rows(bot, guild.text.id), equals=[("user", "hi", None)])
    await ask(discord_fake, guild.text, member, "again")  # and the channel still answers
    assert (await stored_rows(bot, guild.text.id))[:2] == [
        ("user", "hi", None),
        ("user", "again", None),
    ]


async def test_image_attachment_is_sent_inline(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    def image(fmt: str) -> bytes:
        out = io.BytesIO()
        frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
        frames[0].save(out, format=fmt, save_all=fmt == "GIF", append_images=frames[1:])
        return out.getvalue()

    png, gif = image("PNG"), image("GIF")
    await start_bot(ai_settings())
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} what is this?",
        attachments=[
            {"filename": "red.png", "content_type": "image/png", "data": png},
            {"filename": "anim.gif", "content_type": "image/gif", "data": gif},
            {"filename": "notes.txt", "content_type": "text/plain", "data": b"line one"},
        ],
    )
    await wait_reply_done(discord_fake, guild.text)
    parts = gemini_fake.requests[-1].contents[-1]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    # google-genai sends the bytes URL-safe base64 encoded, with a snake_case mime key.
    assert [d.get("mimeType", d.get("mime_type")) for d in inline] == ["image/png"] * 2
    assert base64.urlsafe_b64decode(inline[0]["data"]) == png
    first_frame = Image.open(io.BytesIO(base64.urlsafe_b64decode(inline[1]["data"])))
    assert first_frame.size == (8, 8) and first_frame.convert("RGB").getpixel((0, 0))[0] > 200
    assert any("[file notes.txt]" in p.get("text", "") and "line one" in p["text"] for p in parts)


async def test_oversized_input_is_refused_clearly(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings(ai_max_attachment_bytes=1000))
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} " + "x" * 4001)
    refusal = await discord_fake.wait_for_message(guild.text)
    assert (
        refusal.content == "That message is too long for me: 4001 characters (the limit is 4000)."
    )
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} look",
        attachments=[{"filename": "big.png", "content_type": "image/png", "data": b"x" * 2000}],
    )
    too_big = await discord_fake.wait_for_message(guild.text, after=1)
    assert too_big.content == "`big.png` is too large for me (limit 1 kB)."
    assert gemini_fake.requests == []


async def test_summary_opens_the_context_once_budget_is_exceeded(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    def answer(request) -> str:
        if "summarise" in request.system_text:
            return "SUMMARY: Alice talked about her garden."
        return "Noted. " * 40

    gemini_fake.default = answer
    bot = await start_bot(ai_settings(ai_context_tokens=500))
    for i in range(4):
        await discord_fake.send_message(
            guild.text, member, f"{mention(discord_fake)} story {i}: " + "my garden grows. " * 20
        )
        await wait_reply_done(discord_fake, guild.text, after=i)
    summary = await eventually(
        lambda: bot.db.fetchval(
            "SELECT summary FROM ai_channels WHERE channel_id = ?", (guild.text.id,)
        )
    )
    assert summary == "SUMMARY: Alice talked about her garden."
    summariser = next(r for r in gemini_fake.requests if r.method == "generateContent")
    assert "story 0" in json.dumps(summariser.contents)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} and now?")
    await wait_reply_done(discord_fake, guild.text, after=4)
    opening = gemini_fake.requests[-1].contents[0]["parts"][0]["text"]
    assert opening.startswith("(Summary of the earlier conversation: SUMMARY: Alice")


async def test_a_failing_summary_is_asked_for_again_only_after_a_growing_wait(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """An empty summary (or a stopped or blocked one) is billed all the same: a reply
    that overflows the context does not ask for it again and again."""
    summary = ""

    def answer(request) -> str:
        return summary if "summarise" in request.system_text else "Noted. " * 40

    def summaries() -> int:  # not memory's consolidation passes, which generate too
        return sum("summarise" in r.system_text for r in gemini_fake.requests)

    gemini_fake.default = answer
    clock = FakeClock()
    settings = ai_settings(ai_context_tokens=500, ai_user_messages_per_minute=20)
    bot = await start_bot(settings, clock=clock)

    def answered() -> float:
        return (
            bot.metrics.registry.get_sample_value("gembot_messages_answered_total", {"kind": "ai"})
            or 0.0
        )

    async def said(text: str) -> None:
        """Ask, and wait until the reply is done with: it asks for a summary (or not) only
        after its last message is shown, so the clock may move only then."""
        done = answered()
        await ask(discord_fake, guild.text, member, text)
        await eventually(lambda: answered() > done)

    for i in range(6):
        await said(f"story {i}: " + "my garden grows. " * 20)
    assert summaries() == 1

    clock.advance(60)
    await said("more")
    await eventually(summaries, equals=2)
    clock.advance(60)  # the wait doubled: two minutes now
    await said("more")
    assert summaries() == 2
    clock.advance(60)
    summary = "SUMMARY: a garden."
    await said("more")
    await eventually(summaries, equals=3)
    await eventually(
        lambda: bot.db.fetchval(
            "SELECT summary FROM ai_channels WHERE channel_id = ?", (guild.text.id,)
        ),
        equals=summary,
    )
    assert summaries() == 3


async def test_slash_chat_streams_through_the_interaction(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    long = ("Line of a long answer.\n" * 120).strip()
    gemini_fake.reply([long[:1500], long[1500:]], chunk_delay=0.1)
    await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "tell me"})
    response = await interaction.wait_response()
    assert response["type"] == 5  # deferred: "thinking…"

    def shown() -> list[FakeMessage]:  # the first follow-up fills in the "thinking" response
        more = [m for m in interaction.followups if m is not interaction.original]
        return [interaction.original, *more] if interaction.original else []

    await discord_fake.wait_for(
        lambda: len(shown()) == 2 and not shown()[-1].content.endswith("⌛")
    )
    first, second = shown()
    assert first.content + "\n" + second.content == long or (
        re.sub(r"\s", "", first.content + second.content) == re.sub(r"\s", "", long)
    )
    assert gemini_fake.requests[-1].last_user_text == "alice: tell me"


async def test_who_the_bot_answers(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    robot = discord_fake.add_user("robot", bot=True)
    guild.add_member(robot, permissions=BASIC)
    await start_bot(ai_settings())

    await discord_fake.send_message(guild.text, member, "no mention, no answer")
    await discord_fake.send_message(guild.text, robot, f"{mention(discord_fake)} from a bot")
    await discord_fake.send_message(
        guild.text, member, f"{mention(discord_fake)} webhook", webhook_id=42
    )
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello")
    (first,) = await wait_reply_done(discord_fake, guild.text)
    assert first.content == "ok hello"

    # A reply to the bot's message counts as addressing it.
    await discord_fake.send_message(guild.text, member, "follow up", reference=first)
    (_, second) = await wait_reply_done(discord_fake, guild.text, count=2)
    assert second.content == "ok follow up"

    # Auto-respond answers everything in the channel.
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    assert "Auto-respond is on" in (await discord_fake.answer(interaction)).content
    await discord_fake.send_message(guild.text, member, "anyone there")
    messages = await wait_reply_done(discord_fake, guild.text, count=4)
    assert messages[-1].content == "ok anyone there"

    # Direct messages.
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "private hello")
    (dm_reply,) = await wait_reply_done(discord_fake, dm)
    assert dm_reply.content == "ok private hello"
    assert len(gemini_fake.requests) == 4


async def test_reload_ai_keeps_the_conversation_and_auto_respond(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    assert "Auto-respond is on" in (await discord_fake.answer(interaction)).content
    await discord_fake.send_message(guild.text, member, "before the reload")
    await wait_reply_done(discord_fake, guild.text)

    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload ai")
    reloaded = await discord_fake.wait_for_message(guild.text, after=2)
    assert reloaded.content == "Reloaded `cogs.ai`."
    await discord_fake.send_message(guild.text, member, "after the reload")
    messages = await wait_reply_done(discord_fake, guild.text, count=4)
    assert messages[-1].content == "ok after the reload"
    history = json.dumps(gemini_fake.requests[-1].contents)
    assert "before the reload" in history and "ok before the reload" in history


async def test_user_rate_limit_sends_one_notice(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings(ai_user_messages_per_minute=2))
    for i in range(5):
        await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} msg {i}")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2)
    # Another person's message, sent after the five, is answered after all of them.
    await ask(discord_fake, guild.text, discord_fake.owner, "my turn")
    notices = [m for m in discord_fake.messages_in(guild.text) if "faster than I can" in m.content]
    assert len(notices) == 1
    assert len(gemini_fake.requests) == 3


async def test_full_channel_queue_sends_one_busy_notice(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(["slow ", "reply"], chunk_delay=0.5)
    await start_bot(ai_settings(ai_channel_queue_size=1))
    for i in range(4):
        await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} q{i}")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2, timeout=10)
    busy = [m for m in discord_fake.messages_in(guild.text) if "still answering" in m.content]
    assert len(busy) == 1


async def test_fallback_model_when_main_is_unavailable(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.model_unavailable = {"gemini-main"}
    await start_bot(ai_settings(gemini_model="gemini-main", gemini_fallback_models=("gemini-b",)))
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi")
    await wait_reply_done(discord_fake, guild.text)
    assert [r.model for r in gemini_fake.requests] == ["gemini-main", "gemini-b"]


async def test_commands_status_persona_prompt_model_export(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    owner = discord_fake.owner
    bot = await start_bot(ai_settings(gemini_allowed_models=("gemini-special",)))

    async def slash(user: FakeUser, *path: str, **options: object) -> FakeMessage:
        interaction = await discord_fake.invoke_slash(
            guild.text, user, path[0], options or None, subcommand=list(path[1:]) or None
        )
        return await discord_fake.answer(interaction)

    set_persona = await slash(owner, "ai", "persona", "set", name="pirate")
    assert "Captain Byte" in set_persona.content
    denied = await slash(member, "ai", "persona", "set", name="default")
    assert "Manage Channels" in denied.content
    await ask(discord_fake, guild.text, member, "ahoy")
    assert "Captain Byte" in gemini_fake.requests[-1].system_text

    await slash(owner, "ai", "prompt", text="Only answer in haiku.")
    await slash(owner, "ai", "model", name="gemini-special")
    await ask(discord_fake, guild.text, member, "again")
    last = gemini_fake.requests[-1]
    assert last.system_text.startswith("Only answer in haiku.")
    assert "Captain Byte" not in last.system_text
    assert last.model == "gemini-special"
    await eventually(lambda: stored_count(bot, guild.text.id), equals=4)

    status = (await slash(member, "ai", "status")).embeds[0]
    fields = {f["name"]: f["value"] for f in status["fields"]}
    assert fields["Model"].startswith("gemini-special")
    assert fields["Persona"] == "Captain Byte"
    assert fields["History"] == "4 messages"
    assert fields["Circuit"] == "closed"
    assert int(fields["Tokens today"].replace(",", "")) > 0

    listing = await slash(member, "ai", "persona", "list")
    assert "`pirate`" in listing.content and "`default`" in listing.content

    await discord_fake.send_message(guild.text, member, "!ai export jsonl")
    export = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.attachments)
    lines = [json.loads(x) for x in export.attachments[0].data.decode().splitlines()]
    assert [entry["role"] for entry in lines] == ["user", "model", "user", "model"]
    assert lines[0]["author_name"] == "alice" and lines[0]["content"] == "ahoy"


async def test_ai_model_offers_only_the_models_the_owner_allows(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(
        ai_settings(
            gemini_model="gemini-main",
            gemini_fallback_models=("gemini-b",),
            gemini_allowed_models=("gemini-pro",),
        )
    )

    async def slash(*path: str, **options: object) -> str:
        interaction = await discord_fake.invoke_slash(
            guild.text, discord_fake.owner, path[0], options or None, subcommand=list(path[1:])
        )
        response = await discord_fake.answer(interaction)
        if response.embeds:
            return response.embeds[0]["fields"][0]["value"]
        return response.content

    refused = await slash("ai", "model", name="gemini-ultra-costly")
    assert refused == (
        "`gemini-ultra-costly` is not allowed here. Choose one of: "
        "`gemini-main`, `gemini-b`, `gemini-pro`, or `default`."
    )
    assert (await bot.chats.prefs.guild(guild.id)).model is None
    assert await slash("ai", "model", name="Gemini-Pro") == "This server now uses `gemini-pro`."
    await ask(discord_fake, guild.text, member, "hi")
    assert gemini_fake.requests[-1].model == "gemini-pro"

    # Chosen while the owner still allowed it (or by an older version): no longer used.
    await bot.chats.prefs.set_guild_model(guild.id, "gemini-ultra-costly")
    await ask(discord_fake, guild.text, member, "again")
    assert gemini_fake.requests[-1].model == "gemini-main"
    status = await slash("ai", "status")
    assert status.startswith("gemini-main → gemini-b")
    assert "`gemini-ultra-costly` is no longer allowed: the default is used" in status


async def test_ai_summarize_folds_all_but_the_last_exchange(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: (
        "SUMMARY: roses, then tulips." if "summarise" in request.system_text else "ok"
    )
    bot = await start_bot(ai_settings())
    for text in ("I grow roses", "and tulips", "what next?"):
        await ask(discord_fake, guild.text, member, text)
    await eventually(lambda: stored_count(bot, guild.text.id), equals=6)

    async def summarize(user: FakeUser) -> str:
        interaction = await discord_fake.invoke_slash(
            guild.text, user, "ai", subcommand="summarize"
        )
        await interaction.wait_response()
        reply = await discord_fake.wait_for(
            lambda: next(
                (
                    m
                    for m in discord_fake.messages_in(guild.text)
                    if m.from_bot and m.interaction_id == interaction.id and m.content
                ),
                None,
            ),
            timeout=10,
        )
        return reply.content

    denied = await discord_fake.invoke_slash(guild.text, member, "ai", subcommand="summarize")
    assert "Manage Messages" in (await denied.wait_response())["data"]["content"]
    assert (await summarize(discord_fake.owner)).startswith("Summary updated:")
    summariser = next(r for r in gemini_fake.requests if r.method == "generateContent")
    folded = json.dumps(summariser.contents)
    assert "I grow roses" in folded and "and tulips" in folded and "what next?" not in folded
    assert await summarize(discord_fake.owner) == "There is nothing new to summarise yet."

    await ask(discord_fake, guild.text, member, "and now?")
    opening = gemini_fake.requests[-1].contents[0]["parts"][0]["text"]
    assert opening.startswith("(Summary of the earlier conversation: SUMMARY: roses")
    assert "I grow roses" not in json.dumps(gemini_fake.requests[-1].contents)


async def test_a_summary_the_ai_stopped_early_is_not_saved(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    for text in ("I grow roses", "and tulips", "what next?"):
        await ask(discord_fake, guild.text, member, text)
    await eventually(lambda: stored_count(bot, guild.text.id), equals=6)

    gemini_fake.reply(["SUMMARY: alice grows", ""], finish_reason="SAFETY")
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", subcommand="summarize"
    )
    await interaction.wait_response()
    error = await discord_fake.wait_for(
        lambda: next(
            (
                m
                for m in discord_fake.messages_in(guild.text)
                if m.from_bot and m.interaction_id == interaction.id and m.content
            ),
            None,
        ),
        timeout=10,
    )
    assert error.content == "The AI stopped before the summary was finished; nothing was changed."
    assert (await bot.chats.prefs.channel(guild.text.id)).summary is None
    # The turns it would have folded are still sent as they were.
    await ask(discord_fake, guild.text, member, "and now?")
    assert "I grow roses" in json.dumps(gemini_fake.requests[-1].contents)
    assert "SUMMARY" not in json.dumps(gemini_fake.requests[-1].contents)


async def test_without_api_key_ai_says_not_configured(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    assert "cogs.ai" in bot.extensions
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello?")
    reply = await discord_fake.wait_for_message(guild.text)
    assert "AI is not configured" in reply.content
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    assert "AI is not configured" in (await interaction.wait_response())["data"]["content"]


@pytest.mark.slow
async def test_shutdown_mid_reply_finalises_and_stores_what_was_shown(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(["Half of ", "the answer ", "is here ", "and more."], chunk_delay=1.5)
    settings = ai_settings()
    bot = await start_bot(settings)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} tell me")
    first = await discord_fake.wait_for_message(guild.text)
    assert first.content.endswith("⌛")
    began = time.monotonic()
    await bot.close()  # what SIGTERM does; replies get 3 s, then are cancelled and finalised
    assert time.monotonic() - began < SHUTDOWN_GRACE + FINALISE_TIMEOUT + 1

    (reply,) = discord_fake.messages_in(guild.text)
    assert not reply.content.endswith("⌛")
    assert reply.content.endswith("\n\n*⚠️ reply cut off by a restart*")
    shown = reply.content.removesuffix("\n\n*⚠️ reply cut off by a restart*")
    assert shown.startswith("Half of the answer") and not shown.endswith("and more.")
    assert await history(settings) == [("user", "tell me", None), ("model", shown, "restart")]

    # After the restart the model is told its last reply was cut off; export says so too.
    await start_bot(settings)
    await ask(discord_fake, guild.text, member, "go on")
    context = json.dumps(gemini_fake.requests[-1].contents)
    assert shown in context and "[this reply was cut off: restart]" in context
    await discord_fake.send_message(guild.text, member, "!ai export jsonl")
    export = await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.attachments)
    lines = [json.loads(x) for x in export.attachments[0].data.decode().splitlines()]
    assert [line["incomplete"] for line in lines[:2]] == [None, "restart"]


@pytest.mark.slow
async def test_a_shutdown_during_the_first_history_write_stores_the_exchange_once(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database's thread commits a write whoever stops waiting for it: a shutdown that
    cancels the reply while its first write comes back must not have the finalising
    write store the exchange a second time."""
    gemini_fake.reply(["Half of ", "the answer."])
    settings = ai_settings()
    bot = await start_bot(settings)
    add_turns, written, released = bot.chats.add_turns, asyncio.Event(), asyncio.Event()

    async def committed_then_slow(*args: Any, **kwargs: Any) -> list[Turn]:
        stored = await add_turns(*args, **kwargs)
        written.set()
        await released.wait()  # committed; the answer is on its way back when cancelled
        return stored

    monkeypatch.setattr(bot.chats, "add_turns", committed_then_slow)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} tell me")
    await written.wait()
    closing = asyncio.create_task(bot.close())
    note = "\n\n*⚠️ reply cut off by a restart*"
    (reply,) = await discord_fake.wait_for(
        lambda: [m for m in discord_fake.messages_in(guild.text) if m.content.endswith(note)],
        timeout=SHUTDOWN_GRACE + 5,
    )
    released.set()
    await closing
    shown = reply.content.removesuffix(note)
    assert await history(settings) == [("user", "tell me", None), ("model", shown, "restart")]


@pytest.mark.slow
async def test_a_shutdown_before_the_first_words_tells_the_asker_to_ask_again(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The model has not answered when the grace replies get at shutdown runs out: the
    mention and the `/chat` are told to ask again, as requests still waiting are (not
    silence, nor "thinking" for good), and the history holds nothing of them."""
    gemini_fake.hang()
    gemini_fake.hang()
    other = guild.add_text_channel("random")
    settings = ai_settings()
    bot = await start_bot(settings)
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} tell me")
    slash = await discord_fake.invoke_slash(other, member, "chat", {"prompt": "and me"})
    assert (await slash.wait_response())["type"] == 5  # deferred: "thinking…"
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2 or None, timeout=10)
    began = time.monotonic()
    await bot.close()
    assert time.monotonic() - began < SHUTDOWN_GRACE + FINALISE_TIMEOUT + 1

    notice = "I'm restarting and couldn't get to this. Please ask again in a moment."
    (told,) = discord_fake.messages_in(guild.text)
    assert told.content == notice and told.reference == sent.id
    assert pings_nobody(told.allowed_mentions)
    assert slash.original is not None and slash.original.content == notice
    assert await history(settings) == []


@pytest.mark.slow
async def test_a_message_during_the_shutdown_is_told_to_ask_again_not_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Messages still arrive while the replies in progress get their grace at shutdown:
    they are told at once to ask again, and none starts a reply that would outlive the
    stop (and the database, and Discord)."""
    gemini_fake.reply(["Once upon ", "a time, ", "the end."], chunk_delay=0.5)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} a story")
    streaming = await discord_fake.wait_for_message(guild.text)
    closing = asyncio.create_task(bot.close())
    await eventually(lambda: cast(AI, bot.get_cog("AI")).dispatcher.closed)
    late = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} me too")
    told = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.reference == late.id
    )
    assert told.content == "I'm restarting and couldn't get to this. Please ask again in a moment."
    await closing
    assert streaming.content == "Once upon a time, the end."
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: a story"]


@pytest.mark.slow
async def test_kill_9_mid_reply_keeps_the_exchange_and_the_next_start_finalises_it(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    tmp_path: Path,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    # Three replies still being written when the process dies: a mention, a /chat and
    # one whose message is deleted before the restart.
    slash, gone = guild.add_text_channel("slash"), guild.add_text_channel("gone")
    gemini_fake.reply(["Shown before ", "the crash ", "and never ", "after."], chunk_delay=1.5)
    gemini_fake.stall_stream_after(["Answered by slash"])
    gemini_fake.stall_stream_after(["Soon deleted"])
    data_dir = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "DISCORD_TOKEN": "test-token",
        "DATA_DIR": str(data_dir),
        "DEV_GUILD_ID": str(guild.id),
        "GEMINI_API_KEY": "test-gemini-key",
        "GEMINI_BASE_URL": gemini_fake.url,
        "AI_EDIT_INTERVAL": "0.05",
        "MEMORY_ENABLED": "false",
        "FAKE_DISCORD_URL": discord_fake.url,
        "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    settings = ai_settings()  # the same data as the process's, for the restart
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await discord_fake.wait_for(lambda: discord_fake.identifies == 1, timeout=60)
        await discord_fake.wait_for(lambda: discord_fake.commands.get(guild.id), timeout=30)
        await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello")
        reply = await discord_fake.wait_for_message(guild.text, timeout=30)
        interaction = await discord_fake.invoke_slash(slash, member, "chat", {"prompt": "hi"})
        answer = await discord_fake.wait_for(
            lambda: (
                interaction.original
                if interaction.original and interaction.original.content == "Answered by slash ⌛"
                else None
            )
        )
        await discord_fake.send_message(gone, member, f"{mention(discord_fake)} hey")
        doomed = await discord_fake.wait_for_message(gone, timeout=30)
        await discord_fake.wait_for(lambda: doomed.content == "Soon deleted ⌛")
        await discord_fake.wait_for(lambda: reply.content == "Shown before the crash ⌛")
        # Written right after each edit, while the replies are still being written.
        expected = [
            ("user", "hello", None),
            ("model", "Shown before the crash", "interrupted"),
            ("user", "hi", None),
            ("model", "Answered by slash", "interrupted"),
            ("user", "hey", None),
            ("model", "Soon deleted", "interrupted"),
        ]
        await eventually(lambda: history(settings, ordered=False), equals=sorted(expected))
    finally:
        process.kill()
        await process.wait()
    assert reply.content == "Shown before the crash ⌛", "killed while still writing"
    assert await history(settings, ordered=False) == sorted(expected)
    doomed.deleted = True  # by a moderator, while the bot was down
    assert answer is not None
    answer.webhook_id = discord_fake.application_id  # as Discord marks an interaction's

    # The next start finalises what the crash left "still writing", in Discord and in the
    # history (the /chat reply through its channel message: its token may have expired).
    bot = await start_bot(settings)
    note = "\n\n*⚠️ reply cut off by a restart*"
    await discord_fake.wait_for(lambda: reply.content == "Shown before the crash" + note)
    await discord_fake.wait_for(lambda: answer.content == "Answered by slash" + note)
    assert f"/channels/{slash.id}/messages/{answer.id}" in [
        r.path for r in discord_fake.requests if r.method == "PATCH"
    ]
    assert pings_nobody(reply.allowed_mentions) and pings_nobody(answer.allowed_mentions)
    finalised = [(role, text, None if role == "user" else "restart") for role, text, _ in expected]
    await eventually(lambda: history(settings, ordered=False), equals=sorted(finalised))
    assert discord_fake.messages_in(gone) == [doomed], "nothing sent for the deleted reply"

    # The model is told its reply was cut off.
    gemini_fake.reply("Where were we?")
    await ask(discord_fake, guild.text, member, "go on")
    (_, cut_off, _) = gemini_fake.requests[-1].contents
    assert (
        cut_off["parts"][0]["text"] == "Shown before the crash \n[this reply was cut off: restart]"
    )
    assert await bot.db.fetchval("SELECT count(*) FROM ai_messages") == 8


async def history(settings: Settings, *, ordered: bool = True) -> list[tuple[str, str, str | None]]:
    """The stored conversation (text stripped as Discord shows it), read from outside the
    bot (which may be stopped or another process): in order, or sorted."""
    sql = "SELECT role, content, incomplete FROM ai_messages ORDER BY id"
    if settings.database_url is not None:
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            rows = [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()
    elif not settings.database_path.exists():
        return []
    else:
        with sqlite3.connect(settings.database_path) as conn:
            try:
                rows = conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # not migrated yet
                return []
    found = [(role, content.strip(), incomplete) for role, content, incomplete in rows]
    return found if ordered else sorted(found)


async def test_blocked_and_truncated_replies_say_why_and_are_stored_as_such(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.block_prompt("SAFETY")
    gemini_fake.reply(["A very long story ", "that goes on", ""], finish_reason="MAX_TOKENS")
    gemini_fake.reply(["Here is how ", ""], finish_reason="SAFETY")
    bot = await start_bot(ai_settings())

    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} something bad")
    refused = await discord_fake.wait_for_message(guild.text)
    assert refused.content == "I can't answer that: your message was blocked by the safety filter."

    long = await ask(discord_fake, guild.text, member, "a long story")
    await discord_fake.wait_for(lambda: "⚠️" in long.content)
    assert long.content == "A very long story that goes on\n\n*⚠️ reply cut at the length limit*"

    stopped = await ask(discord_fake, guild.text, member, "how to")
    await discord_fake.wait_for(lambda: "⚠️" in stopped.content)
    assert stopped.content == "Here is how\n\n*⚠️ reply blocked by the safety filter*"

    # A refused prompt is not kept (it would be sent, and refused, with every later
    # message); replies that showed text are kept with why they stopped.
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[
            ("user", "a long story", None),
            ("model", "A very long story that goes on", "length"),
            ("user", "how to", None),
            ("model", "Here is how ", "safety"),
        ],
    )


async def test_usage_counts_replies_cut_off_or_blocked(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Google bills a reply however it ends: one cut at the length limit used all its
    output, one blocked before any text still read the prompt."""
    gemini_fake.reply(
        ["A very long story ", "that goes on", ""],
        finish_reason="MAX_TOKENS",
        usage={"promptTokenCount": 100, "candidatesTokenCount": 8000},
    )
    gemini_fake.reply(
        [""], finish_reason="SAFETY", usage={"promptTokenCount": 50, "candidatesTokenCount": 0}
    )
    await start_bot(ai_settings())

    async def tokens_today() -> str:
        interaction = await discord_fake.invoke_slash(guild.text, member, "ai", subcommand="status")
        status = (await discord_fake.answer(interaction)).embeds[0]
        return {f["name"]: f["value"] for f in status["fields"]}["Tokens today"]

    long = await ask(discord_fake, guild.text, member, "a long story")
    await discord_fake.wait_for(lambda: "⚠️" in long.content)
    await eventually(tokens_today, equals="8,100")

    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} how to")
    refused = await discord_fake.wait_for_message(guild.text, after=1)
    assert refused.content == "I can't answer that: the reply was blocked by the safety filter."
    await eventually(tokens_today, equals="8,150")


async def test_ai_safety_sets_the_channel_threshold(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())

    async def slash(user: FakeUser, *path: str, **options: object) -> FakeMessage:
        interaction = await discord_fake.invoke_slash(
            guild.text, user, path[0], options or None, subcommand=list(path[1:]) or None
        )
        return await discord_fake.answer(interaction)

    denied = await slash(member, "ai", "safety", level="off")
    assert "Manage Channels" in denied.content
    await ask(discord_fake, guild.text, member, "first")
    assert "safetySettings" not in json.dumps(gemini_fake.requests[-1].json)

    done = await slash(discord_fake.owner, "ai", "safety", level="low")
    assert "low or higher chance of harm" in done.content
    await ask(discord_fake, guild.text, member, "second")
    sent = gemini_fake.requests[-1].json.get("safetySettings") or gemini_fake.requests[-1].json[
        "generationConfig"
    ].get("safetySettings")
    assert len(sent) == 4 and {s["threshold"] for s in sent} == {"BLOCK_LOW_AND_ABOVE"}
    status = (await slash(member, "ai", "status")).embeds[0]
    assert {f["name"]: f["value"] for f in status["fields"]}["Safety"] == "low"

    await slash(discord_fake.owner, "ai", "safety", level="default")
    await ask(discord_fake, guild.text, member, "third")
    assert "safetySettings" not in json.dumps(gemini_fake.requests[-1].json)


async def test_an_open_breaker_answers_before_any_other_work(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(503)
    await start_bot(ai_settings(ai_breaker_threshold=1, gemini_max_retries=0, ai_breaker_reset=60))
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} one")
    await discord_fake.wait_for_message(guild.text)
    typing_before = len(discord_fake.typing)
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} look at this",
        attachments=[{"filename": "notes.txt", "content_type": "text/plain", "data": b"hello"}],
    )
    refusal = await discord_fake.wait_for_message(guild.text, after=1)
    assert re.fullmatch(r"AI is unavailable, try again in \d+ s\.", refusal.content)
    # Refused first: no typing indicator, no attachment download, no history read.
    assert len(discord_fake.typing) == typing_before
    assert not any(r.path.startswith("/attachments/") for r in discord_fake.requests)
    assert len(gemini_fake.requests) == 1


async def test_a_hanging_model_is_given_up_on_at_the_reply_deadline(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    for _ in range(8):
        gemini_fake.hang()
    await start_bot(
        ai_settings(
            gemini_timeout=30,
            gemini_max_retries=3,
            gemini_fallback_models=("gemini-b",),
            ai_reply_deadline=1.0,
        )
    )
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi")
    error = await discord_fake.wait_for_message(guild.text, timeout=5)
    assert error.content == "The AI is not answering right now; please try again later."
    assert 0.9 <= (error.timestamp - sent.timestamp).total_seconds() < 2.0


async def test_fallback_model_answers_when_the_main_one_keeps_failing(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.fail(503, times=6, model="gemini-main")
    gemini_fake.fail(429, model="gemini-main")  # out of quota: straight to the fallback
    bot = await start_bot(
        ai_settings(
            gemini_model="gemini-main", gemini_fallback_models=("gemini-b",), gemini_max_retries=2
        )
    )
    for text in ("one", "two", "three"):
        reply = await ask(discord_fake, guild.text, member, text)
        assert reply.content == "ok"
    assert [r.model for r in gemini_fake.requests] == [
        *["gemini-main"] * 3 + ["gemini-b"],
        *["gemini-main"] * 3 + ["gemini-b"],
        "gemini-main",
        "gemini-b",
    ]
    assert bot.gemini.breaker.state == "closed"


async def test_export_markdown(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply("Roses like sun.")
    gemini_fake.reply(["Tulips need ", "cold winters", ""], finish_reason="MAX_TOKENS")
    bot = await start_bot(ai_settings())
    empty = await discord_fake.invoke_slash(guild.text, member, "ai", subcommand="export")
    (nothing,) = await discord_fake.wait_for(lambda: empty.followups)
    assert "no conversation to export" in nothing.content
    await ask(discord_fake, guild.text, member, "roses?")
    await ask(discord_fake, guild.text, member, "tulips?")
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[
            ("user", "roses?", None),
            ("model", "Roses like sun.", None),
            ("user", "tulips?", None),
            ("model", "Tulips need cold winters", "length"),
        ],
    )

    interaction = await discord_fake.invoke_slash(
        guild.text, member, "ai", {"format": "markdown"}, subcommand="export"
    )
    assert (await interaction.wait_response())["type"] == 5, "deferred before reading"
    assert interaction.ephemeral, "only the asker sees it"
    await discord_fake.wait_for(lambda: interaction.followups)
    assert interaction.original.content == "4 messages."
    (file,) = interaction.original.attachments
    assert file.filename == f"conversation-{guild.text.id}.md"
    text = file.data.decode()
    assert text.startswith(f"# Conversation in #{guild.text.name}\n")
    blocks = re.findall(r"\*\*(.+?)\*\* · \d{4}-\d\d-\d\d \d\d:\d\d UTC\n\n(.*?)\n\n", text)
    assert blocks == [
        ("alice", "roses?"),
        ("Assistant", "Roses like sun."),
        ("alice", "tulips?"),
        ("Assistant", "Tulips need cold winters"),
    ]
    assert text.rstrip().endswith("*(incomplete: length)*")


async def test_channel_rate_limit_counts_everyone_in_the_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    people = [member]
    for name in ("bob", "carol"):
        person = discord_fake.add_user(name)
        guild.add_member(person, permissions=BASIC)
        people.append(person)
    other = guild.add_text_channel("other")
    await start_bot(ai_settings(ai_channel_messages_per_minute=3, ai_user_messages_per_minute=5))
    for i, person in enumerate(people * 2):  # six messages, two each: under the user limit
        await discord_fake.send_message(guild.text, person, f"{mention(discord_fake)} m{i}")
    # Three replies and one notice per person refused (the channel's budget is spent).
    messages = await wait_reply_done(discord_fake, guild.text, count=6)
    notices = [m for m in messages if "faster than I can" in m.content]
    assert len(notices) == 3 and len(messages) == 6
    # Another channel still has its own budget.
    await ask(discord_fake, other, member, "elsewhere")
    assert sorted(r.last_user_text for r in gemini_fake.requests) == [
        "alice: elsewhere",
        "alice: m0",
        "bob: m1",
        "carol: m2",
    ]


async def test_export_needs_read_message_history_in_the_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    bot = await start_bot(ai_settings())
    await ask(discord_fake, guild.text, discord_fake.owner, "the plans")
    await eventually(lambda: stored_count(bot, guild.text.id), equals=2)
    read_message_history = 0x10000
    guild.set_overwrite(guild.text, guild.id, deny=read_message_history, member=False)

    refusal = "You need the Read Message History permission to do that."
    denied = await discord_fake.invoke_slash(guild.text, member, "ai", subcommand="export")
    assert (await denied.wait_response())["data"]["content"] == refusal  # refused at once
    assert not denied.original.attachments
    shown = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "!ai export")
    answer = await discord_fake.wait_for_message(guild.text, after=shown)
    assert answer.content == refusal and not answer.attachments

    allowed = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", subcommand="export"
    )
    await discord_fake.wait_for(lambda: allowed.followups)
    assert allowed.original.content == "2 messages."
    assert "the plans" in allowed.original.attachments[0].data.decode()

    # In a DM the conversation is the member's own.
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "mine")
    await wait_reply_done(discord_fake, dm)
    await discord_fake.send_message(dm, member, "!ai export jsonl")
    export = await discord_fake.wait_for_message(dm, predicate=lambda m: m.attachments)
    assert "mine" in export.attachments[0].data.decode()


async def test_export_in_a_private_thread_works_for_those_in_it(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Without the members intent the bot doesn't know who is in a private thread; the one
    using a command there is in it."""
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    bot = await start_bot(ai_settings())
    thread = guild.add_thread(guild.text, "plans", discord_fake.owner, type=PRIVATE_THREAD)
    await ask(discord_fake, thread, member, "the secret plans")
    await eventually(lambda: stored_count(bot, thread.id), equals=2)

    export = await discord_fake.invoke_slash(thread, member, "ai", subcommand="export")
    await discord_fake.wait_for(lambda: export.followups)
    assert export.original.content == "2 messages."
    assert "the secret plans" in export.original.attachments[0].data.decode()
    await discord_fake.send_message(thread, member, "!ai export jsonl")
    sent = await discord_fake.wait_for_message(thread, predicate=lambda m: m.attachments)
    assert "the secret plans" in sent.attachments[0].data.decode()

    # Its permissions still count: without Read Message History, no export.
    read_message_history = 0x10000
    guild.set_overwrite(guild.text, guild.id, deny=read_message_history, member=False)
    denied = await discord_fake.invoke_slash(thread, member, "ai", subcommand="export")
    assert "Read Message History" in (await denied.wait_response())["data"]["content"]


async def test_an_attachment_download_cut_off_gets_the_short_message(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reset(self: discord.Attachment, **kwargs: object) -> bytes:
        raise aiohttp.ClientPayloadError("Response payload is not completed")

    monkeypatch.setattr(discord.Attachment, "read", reset)
    await start_bot(ai_settings())
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} read this",
        attachments=[{"filename": "notes.txt", "content_type": "text/plain", "data": b"hello"}],
    )
    answer = await discord_fake.wait_for_message(guild.text)
    assert answer.content == "I couldn't download `notes.txt`."
    assert gemini_fake.requests == []


async def test_a_reload_tells_those_still_waiting_to_ask_again(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply(["Once upon ", "a time, ", "the end."], chunk_delay=0.5)
    await start_bot(ai_settings())
    bob, carol = discord_fake.add_user("bob"), discord_fake.add_user("carol")
    for person in (bob, carol):
        guild.add_member(person, permissions=BASIC)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} a story")
    streaming = await discord_fake.wait_for_message(guild.text)
    assert streaming.content.endswith("⌛")
    queued = await discord_fake.send_message(guild.text, bob, f"{mention(discord_fake)} me too")
    slash = await discord_fake.invoke_slash(guild.text, carol, "chat", {"prompt": "and me"})
    assert (await slash.wait_response())["type"] == 5  # deferred: "thinking…"

    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload ai")
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "Reloaded `cogs.ai`."
    )
    notice = "I'm restarting and couldn't get to this. Please ask again in a moment."
    (told,) = [m for m in discord_fake.messages_in(guild.text) if m.reference == queued.id]
    assert told.content == notice and pings_nobody(told.allowed_mentions)
    assert slash.original is not None and slash.original.content == notice
    assert streaming.content == "Once upon a time, the end.", "the running reply finished"
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: a story"]


async def test_system_messages_in_an_auto_respond_channel_get_no_reply(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.default = lambda request: "ok " + request.last_user_text.rsplit(": ", 1)[-1]
    await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"mode": "on"}, subcommand="autorespond"
    )
    assert "Auto-respond is on" in (await discord_fake.answer(interaction)).content
    before = len(discord_fake.messages_in(guild.text))
    # "alice started a thread: Movie night", "alice pinned a message", alice joined.
    for kind, content in ((18, "Movie night"), (6, ""), (7, "")):
        await discord_fake.send_message(guild.text, member, content, type=kind)
    await discord_fake.send_message(guild.text, member, "hello")
    (reply,) = await wait_reply_done(discord_fake, guild.text, after=before)
    assert reply.content == "ok hello"
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: hello"]


async def test_with_dms_off_a_dm_or_chat_in_a_dm_gets_one_short_line(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings(ai_dm_enabled=False))
    dm = discord_fake.open_dm(member)
    off = "I don't chat in direct messages on this bot; mention me in a server instead."
    await discord_fake.send_message(dm, member, "hello")
    assert (await discord_fake.wait_for_message(dm)).content == off
    await discord_fake.send_message(dm, member, "!chat hello anyway")
    assert (await discord_fake.wait_for_message(dm, after=1)).content == off
    await ask(discord_fake, guild.text, member, "in the server then")
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: in the server then"]


async def test_the_model_is_told_of_a_sticker_or_a_file_it_cannot_read(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "", stickers=["Wave"])
    await wait_reply_done(discord_fake, dm)
    assert gemini_fake.requests[-1].last_user_text == "alice: [sticker: Wave]"

    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} summarise this",
        attachments=[
            {"filename": "report.pdf", "content_type": "application/pdf", "data": b"%PDF-1.7"}
        ],
    )
    await wait_reply_done(discord_fake, guild.text)
    said = "summarise this [unsupported attachment: report.pdf]"
    assert gemini_fake.requests[-1].last_user_text == f"alice: {said}"
    assert (await stored_rows(bot, guild.text.id))[0][1] == said


async def test_the_model_is_told_what_a_forwarded_message_or_a_poll_says(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    original = await discord_fake.send_message(
        guild.text,
        member,
        "Meet at six",
        attachments=[{"filename": "map.pdf", "content_type": "application/pdf", "data": b"%"}],
    )
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "", forwarded=original)
    await wait_reply_done(discord_fake, dm)
    forward = "[forwarded message: Meet at six [unsupported attachment: map.pdf]]"
    assert gemini_fake.requests[-1].last_user_text == f"alice: {forward}"

    await discord_fake.send_message(dm, member, "", poll=("Pizza or tacos?", ["pizza", "tacos"]))
    await wait_reply_done(discord_fake, dm, after=1)
    poll = "[poll: Pizza or tacos? (answers: pizza / tacos)]"
    assert gemini_fake.requests[-1].last_user_text == f"alice: {poll}"
    await eventually(lambda: stored_count(bot, dm.id), equals=4)
    stored = await stored_rows(bot, dm.id)
    assert [content for role, content, _ in stored if role == "user"] == [forward, poll]


async def test_the_model_is_told_what_the_message_replied_to_says(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A "@bot what does he mean?" in reply to someone's message: the model reads that
    message (its text, its embed's, notes of its files) and the history keeps it with the
    question. A reply to the bot's own message adds nothing: the history holds that."""
    bot = await start_bot(ai_settings())
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    said = await discord_fake.send_message(
        guild.text,
        bob,
        "Moved, see the card",
        attachments=[{"filename": "agenda.pdf", "content_type": "application/pdf", "data": b"%"}],
    )
    said.embeds = [{"type": "rich", "title": "Team sync", "description": "Thursday at ten"}]
    question = f"{mention(discord_fake)} what does he mean?"
    await discord_fake.send_message(guild.text, member, question, reference=said)
    (answer,) = await wait_reply_done(discord_fake, guild.text)
    note = (
        "[replying to bob: Moved, see the card [embed: Team sync / Thursday at ten] "
        "[unsupported attachment: agenda.pdf]]"
    )
    assert gemini_fake.requests[-1].last_user_text == f"alice: what does he mean? {note}"
    await eventually(lambda: stored_count(bot, guild.text.id), equals=2)
    assert (await stored_rows(bot, guild.text.id))[0][1] == f"what does he mean? {note}"

    await discord_fake.send_message(guild.text, member, "and where?", reference=answer)
    await wait_reply_done(discord_fake, guild.text, count=2)
    assert gemini_fake.requests[-1].last_user_text == "alice: and where?"


async def test_the_model_is_told_what_a_forward_replied_to_forwards(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A forward's own text is empty (what it forwards is in its snapshot): "@bot is this
    true?" in reply to one reads what it forwards, not "[replying to bob: ]"."""
    bot = await start_bot(ai_settings())
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    original = await discord_fake.send_message(guild.text, bob, "The moon is made of cheese")
    forward = await discord_fake.send_message(guild.text, bob, "", forwarded=original)
    question = f"{mention(discord_fake)} is this true?"
    await discord_fake.send_message(guild.text, member, question, reference=forward)
    await wait_reply_done(discord_fake, guild.text)
    said = "is this true? [replying to bob: [forwarded message: The moon is made of cheese]]"
    assert gemini_fake.requests[-1].last_user_text == f"alice: {said}"
    await eventually(lambda: stored_count(bot, guild.text.id), equals=2)
    assert (await stored_rows(bot, guild.text.id))[0][1] == said


async def test_a_thread_keeps_the_prompt_and_safety_of_its_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())

    async def slash(channel, *path: str, **options: object) -> FakeMessage:
        interaction = await discord_fake.invoke_slash(
            channel, discord_fake.owner, path[0], options, subcommand=list(path[1:])
        )
        return await discord_fake.answer(interaction)

    await slash(guild.text, "ai", "safety", level="low")
    await slash(guild.text, "ai", "prompt", text="Only talk about gardening.")
    thread = guild.add_thread(guild.text, "side talk", member)
    await ask(discord_fake, thread, member, "hello")
    request = gemini_fake.requests[-1]
    assert request.system_text.startswith("Only talk about gardening.")
    sent = request.json.get("safetySettings") or request.json["generationConfig"].get(
        "safetySettings"
    )
    assert {s["threshold"] for s in sent} == {"BLOCK_LOW_AND_ABOVE"}
    status = (await slash(thread, "ai", "status")).embeds[0]
    fields = {f["name"]: f["value"] for f in status["fields"]}
    assert (fields["Safety"], fields["Custom prompt"]) == ("low", "yes")

    # What the thread sets itself wins.
    await slash(thread, "ai", "safety", level="high")
    await ask(discord_fake, thread, member, "again")
    request = gemini_fake.requests[-1]
    sent = request.json.get("safetySettings") or request.json["generationConfig"].get(
        "safetySettings"
    )
    assert {s["threshold"] for s in sent} == {"BLOCK_ONLY_HIGH"}


async def test_an_export_larger_than_discord_takes_sends_the_newest_messages_that_fit(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(ai_settings())
    long = [Turn("user", member.id, "alice", f"{i}" + "x" * 1_000_000) for i in range(11)]
    await bot.chats.add_turns(guild.id, guild.text.id, long)
    await discord_fake.send_message(guild.text, member, "!ai export jsonl")
    export = await discord_fake.wait_for_message(guild.text, timeout=15)
    assert export.content == "The newest 10 of 11 messages (a file here can be at most 10 MiB)."
    (file,) = export.attachments
    lines = file.data.decode().splitlines()
    assert [json.loads(line)["content"].rstrip("x") for line in lines] == [
        str(i) for i in range(1, 11)
    ]


async def test_persona_list_shows_every_persona_however_many(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings()
    folder = settings.data_dir / "personas"
    folder.mkdir(parents=True)
    for i in range(12):
        description = f"Persona number {i}, " + "who explains things at length. " * 6
        (folder / f"extra{i:02}.md").write_text(f"# Extra {i}\n{description}\n\nBe extra.")
    await start_bot(settings)
    await discord_fake.send_message(guild.text, member, "!ai persona list")
    await discord_fake.wait_for(
        lambda: "`extra11`" in final_text(discord_fake.messages_in(guild.text))
    )
    messages = discord_fake.messages_in(guild.text)
    assert all(len(m.content) <= 2000 for m in messages)
    listed = final_text(messages)
    assert all(f"`extra{i:02}`" in listed for i in range(12)) and "`default`" in listed


async def test_persona_names_complete_from_the_titles_people_see(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    await start_bot(ai_settings())
    typed = await discord_fake.invoke_slash(
        guild.text,
        discord_fake.owner,
        "ai",
        {"name": "capt"},
        subcommand=["persona", "set"],
        focused="name",
    )
    response = await typed.wait_response()
    assert response["type"] == 8
    assert response["data"]["choices"] == [{"name": "Captain Byte", "value": "pirate"}]


async def test_edits_by_other_bots_and_webhooks_cost_no_database_work(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another bot streaming its replies, or a music bot's progress bar, edits all the time:
    none of those messages can be in the history, so none is looked up there."""
    robot = discord_fake.add_user("robot", bot=True)
    guild.add_member(robot, permissions=BASIC)
    bot = await start_bot(ai_settings())
    looked_up: list[int] = []
    edit_message = bot.chats.data.edit_message

    async def spy(channel_id: int, message_id: int, *rest: Any) -> tuple[bool, Turn | None]:
        looked_up.append(message_id)
        return await edit_message(channel_id, message_id, *rest)

    monkeypatch.setattr(bot.chats.data, "edit_message", spy)
    bots = await discord_fake.send_message(guild.text, robot, "now playing 0:01")
    hooked = await discord_fake.send_message(guild.text, member, "proxied", webhook_id=42)
    mine = await discord_fake.send_message(guild.text, member, "a typo")
    discord_fake.edit_by_author(bots, "now playing 0:02")
    discord_fake.edit_by_author(hooked, "proxied, edited")
    discord_fake.edit_by_author(mine, "no typo")
    # The handlers run in the order of the events: the others' edits would come first.
    await discord_fake.wait_for(lambda: mine.id in looked_up or None)
    assert looked_up == [mine.id]


async def test_a_summary_is_asked_for_with_the_safety_level_of_its_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Google's default filter could block the summary of what the channel's own level let
    through; then every reply would ask for it again, the whole backlog each time."""
    gemini_fake.default = lambda request: (
        "SUMMARY: roses." if "summarise" in request.system_text else "ok"
    )
    bot = await start_bot(ai_settings())
    thread = guild.add_thread(guild.text, "garden", member)
    safety = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "ai", {"level": "off"}, subcommand="safety"
    )
    assert "off" in (await discord_fake.answer(safety)).content
    for text in ("I grow roses", "and tulips", "what next?"):
        await ask(discord_fake, thread, member, text)
    await eventually(lambda: stored_count(bot, thread.id), equals=6)

    await discord_fake.send_message(thread, discord_fake.owner, "!ai summarize")
    await discord_fake.wait_for_message(
        thread, predicate=lambda m: m.content.startswith("Summary updated:")
    )
    summariser = next(r for r in gemini_fake.requests if r.method == "generateContent")
    sent = summariser.json.get("safetySettings") or summariser.json["generationConfig"].get(
        "safetySettings"
    )
    assert len(sent) == 4 and {s["threshold"] for s in sent} == {"OFF"}


async def test_a_file_said_to_be_an_image_that_is_not_one_gets_one_short_line(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Gemini refuses a whole request for an image it can't read, naming none: the asker
    is told which file, and Google is not asked."""
    await start_bot(ai_settings())
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} what is this?",
        attachments=[{"filename": "photo.jpg", "content_type": "image/jpeg", "data": b"oops"}],
    )
    answer = await discord_fake.wait_for_message(guild.text)
    assert answer.content == "I couldn't read the image `photo.jpg`."
    assert gemini_fake.requests == []


async def test_files_too_large_together_for_one_request_get_one_short_line(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Each under the 8 MB a file may have, but two of them (base64 in the request) would be
    over the 20 MB Gemini takes: said before anything is downloaded or sent."""
    await start_bot(ai_settings())
    photo = b"\x89PNG" + b"x" * 7_600_000
    await discord_fake.send_message(
        guild.text,
        member,
        f"{mention(discord_fake)} compare these",
        attachments=[
            {"filename": f"{name}.png", "content_type": "image/png", "data": photo}
            for name in ("left", "right")
        ],
    )
    answer = await discord_fake.wait_for_message(guild.text, timeout=15)
    assert answer.content == "The files of one message can be at most 15 MB together for me."
    assert gemini_fake.requests == []


async def test_ai_status_in_a_dm_shows_no_one_the_tokens_of_everyones_dms(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply("hi bob", usage={"promptTokenCount": 70, "candidatesTokenCount": 7})
    await start_bot(ai_settings())
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    bobs = discord_fake.open_dm(bob)
    await discord_fake.send_message(bobs, bob, "hello")
    await wait_reply_done(discord_fake, bobs)

    alices = discord_fake.open_dm(member)
    await discord_fake.send_message(alices, member, "!ai status")
    status = await discord_fake.wait_for_message(alices, predicate=lambda m: m.embeds)
    names = [field["name"] for field in status.embeds[0]["fields"]]
    assert "History" in names and "Tokens today" not in names


@pytest.mark.parametrize("told_by", ["discord", "clock"])
async def test_a_slash_chat_answered_after_its_token_expired_fills_in_its_thinking_message(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    told_by: str,
) -> None:
    """Waited past the 15 minutes an interaction token lives (a full queue, a slow model),
    as Discord refusing the token or discord.py's own clock tells: the "thinking" message
    is edited in the channel to carry the answer (none is left "thinking" for good beside
    it), pinging nobody, and the history holds it."""
    gemini_fake.reply(["Late ", "but here"], chunk_delay=0.3)
    bot = await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    assert (await interaction.wait_response())["type"] == 5
    if told_by == "discord":
        interaction.expired = True
    else:
        monkeypatch.setattr(discord.Interaction, "is_expired", lambda self: True)
        interaction.expired = True  # what Discord would say too
    thinking = interaction.original
    assert thinking is not None and thinking.loading

    await discord_fake.wait_for(lambda: thinking.content == "Late but here", timeout=10)
    assert not thinking.loading and pings_nobody(thinking.allowed_mentions)
    assert [m.id for m in discord_fake.messages_in(guild.text)] == [thinking.id]
    assert interaction.followups == []
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "hi", None), ("model", "Late but here", None)],
    )
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


@pytest.mark.backends("sqlite")
async def test_a_slash_chat_whose_thinking_message_was_deleted_is_answered_in_the_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the token's life, with its "thinking" message gone: a plain channel message."""
    gemini_fake.reply(["Late ", "but here"], chunk_delay=0.3)
    await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    assert (await interaction.wait_response())["type"] == 5
    interaction.expired = True
    assert interaction.original is not None
    discord_fake._delete_message(interaction.original)

    def answered() -> list[FakeMessage]:
        sent = [m for m in discord_fake.messages_in(guild.text) if not m.deleted]
        return sent if sent and not sent[0].content.endswith("⌛") else []

    (answer,) = await discord_fake.wait_for(answered, timeout=10)
    assert answer.content == "Late but here" and answer.interaction_id is None
    assert answer.reference is None and pings_nobody(answer.allowed_mentions)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


async def test_a_slash_chat_whose_token_expires_while_streaming_is_finished_in_the_channel(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Edits through an expired token fail; the reply is still finished, not left writing."""
    gemini_fake.reply(["Begun ", "through the token, ", "ended without it"], chunk_delay=0.3)
    bot = await start_bot(ai_settings())
    interaction = await discord_fake.invoke_slash(guild.text, member, "chat", {"prompt": "hi"})
    await discord_fake.wait_for(
        lambda: interaction.original is not None and interaction.original.content == "Begun ⌛"
    )
    interaction.expired = True
    reply = interaction.original
    assert reply is not None
    await discord_fake.wait_for(lambda: not reply.content.endswith("⌛"), timeout=10)
    assert reply.content == "Begun through the token, ended without it"
    assert pings_nobody(reply.allowed_mentions)
    assert [m.id for m in discord_fake.messages_in(guild.text)] == [reply.id]
    await eventually(
        lambda: stored_rows(bot, guild.text.id),
        equals=[("user", "hi", None), ("model", "Begun through the token, ended without it", None)],
    )
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


async def test_a_mention_where_the_bot_may_not_write_costs_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Its answer could not be shown: Google is not asked (and billed) for it, whether
    the bot is mentioned or asked with `!chat`."""
    muted = guild.add_text_channel("announcements")
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)  # not an administrator
    guild.set_overwrite(muted, discord_fake.bot_user.id, deny=SEND_MESSAGES, member=True)
    await start_bot(ai_settings())
    await discord_fake.send_message(muted, member, f"{mention(discord_fake)} hi")
    await discord_fake.send_message(muted, member, "!chat hello")
    gemini_fake.reply("Answered here")
    assert (await ask(discord_fake, guild.text, member, "and here?")).content == "Answered here"
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: and here?"]
    assert discord_fake.messages_in(muted) == []


async def test_a_reply_to_a_channel_deleted_meanwhile_is_dropped_without_a_traceback(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    doomed = guild.add_text_channel("doomed")
    gemini_fake.reply("Nobody will read this", chunk_delay=0.5)
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(doomed, member, f"{mention(discord_fake)} hi")
    await discord_fake.wait_for(lambda: gemini_fake.requests)
    guild.delete_channel(doomed)
    await discord_fake.wait_for(
        lambda: any("could not say why" in r.getMessage() for r in caplog.records), timeout=10
    )
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    assert await stored_rows(bot, doomed.id) == []


async def test_a_summary_far_longer_than_asked_leaves_room_for_the_conversation(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    def answer(request) -> str:
        if "summarise" in request.system_text:
            return "SUMMARY: Alice talked about her garden. " + "And on. " * 1000
        return "Noted. " * 40

    gemini_fake.default = answer
    bot = await start_bot(ai_settings(ai_context_tokens=500))
    for i in range(4):
        await discord_fake.send_message(
            guild.text, member, f"{mention(discord_fake)} story {i}: " + "my garden grows. " * 20
        )
        await wait_reply_done(discord_fake, guild.text, after=i)
    summary = await eventually(
        lambda: bot.db.fetchval(
            "SELECT summary FROM ai_channels WHERE channel_id = ?", (guild.text.id,)
        )
    )
    assert summary.startswith("SUMMARY: Alice talked about her garden.")
    assert len(summary) <= 4 * 500 // 4
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} and now?")
    await wait_reply_done(discord_fake, guild.text, after=4)
    asked = json.dumps(gemini_fake.requests[-1].contents)
    assert "story 3" in asked, "the latest exchange is still in the prompt"
