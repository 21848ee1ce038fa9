"""AI chat end to end: messages edited or deleted while they wait for their turn, the
rate limits of messages never answered, messages where no answer could be shown (a
locked thread; a channel deleted, or a server that removed the bot, while they wait),
memories of messages deleted or edited while memory is off, and `/ai reset` while the first
message of a conversation is answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import discord

from cogs.ai.cog import AI
from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.discord_models import DEFAULT_PERMS
from tests.fakes.discord_rest import Body
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_request import texts
from tests.fakes.gemini_server import FakeGemini
from utils.memory.chatlog import BOT_LABEL

if TYPE_CHECKING:
    from bot import Bot

SEND_MESSAGES = discord.Permissions(send_messages=True).value


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


def replies_to(fake: FakeDiscord, guild: FakeGuild, message: FakeMessage) -> list[FakeMessage]:
    return [m for m in fake.messages_in(guild.text) if m.reference == message.id]


def forget_cached(bot: Bot) -> None:
    """A busy bot's message cache (discord.py keeps the last 1000 messages of all its
    servers) no longer holds the messages sent so far: an edit then comes as a new
    message object, not as a change to the one the bot has."""
    cached = bot._connection._messages
    assert cached is not None
    cached.clear()


async def answered(fake: FakeDiscord, guild: FakeGuild, message: FakeMessage) -> str:
    """The text of the bot's finished reply to `message`."""

    def done() -> str | None:
        replies = replies_to(fake, guild, message)
        return replies[0].content if replies and not replies[0].content.endswith("⌛") else None

    text = await fake.wait_for(done, timeout=10)
    assert text is not None
    return text


async def test_a_message_edited_while_it_waits_to_no_longer_mention_the_bot_is_not_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A message "@bot are you there?" edited to "never mind, talking to Bob" before its
    turn is no longer asked of the bot: no reply, no AI request, and no rate limit spent
    (with a bot busy enough that its message cache has moved on)."""
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings(ai_user_messages_per_minute=2))
    cog = cast(AI, bot.get_cog("AI"))
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    edited = await discord_fake.send_message(guild.text, member, f"{at} are you there?")
    await eventually(lambda: len(cog._pending), equals=2)
    forget_cached(bot)
    discord_fake.edit_by_author(edited, "never mind, talking to Bob")
    await eventually(lambda: len(cog._pending), equals=0)  # the first answered, the edit not
    last = await discord_fake.send_message(guild.text, member, f"{at} last")

    assert await answered(discord_fake, guild, last) == "ok"  # not refused: 2 a minute
    asked = [r.last_user_text for r in gemini_fake.requests]
    assert asked == ["alice: first", "alice: last"]
    assert replies_to(discord_fake, guild, edited) == []


async def test_a_message_edited_while_it_waits_is_answered_with_what_it_holds_now(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A file taken off a waiting message (sent by mistake) does not reach Google (with a
    bot busy enough that its message cache has moved on)."""
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    secret = {"filename": "secrets.txt", "content_type": "text/plain", "data": b"PIN 4821"}
    edited = await discord_fake.send_message(
        guild.text, member, f"{at} read this", attachments=[secret]
    )
    await eventually(lambda: len(cog._pending), equals=2)
    forget_cached(bot)
    discord_fake._apply_edit(edited, Body({"content": f"{at} read nothing", "attachments": []}))

    assert await answered(discord_fake, guild, edited) == "ok"
    sent = json.dumps(gemini_fake.requests[-1].contents)
    assert "read nothing" in sent
    assert "4821" not in sent and "secrets.txt" not in sent


async def test_messages_deleted_or_muted_while_they_wait_cost_no_rate_limit(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Only the messages the AI takes count against the limits: one deleted before its
    turn, or waiting while moderators muted the bot, does not."""
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    gemini_fake.reply(["slow ", "second ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings(ai_user_messages_per_minute=3))
    cog = cast(AI, bot.get_cog("AI"))
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    deleted = await discord_fake.send_message(guild.text, member, f"{at} oops")
    await eventually(lambda: len(cog._pending), equals=2)
    discord_fake._delete_message(deleted)
    await eventually(lambda: len(cog._pending), equals=0)  # the first answered, `oops` not

    await discord_fake.send_message(guild.text, member, f"{at} second")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2 or None)
    await discord_fake.send_message(guild.text, member, f"{at} while muted")
    await eventually(lambda: len(cog._pending), equals=2)
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=SEND_MESSAGES, member=True)
    await eventually(lambda: len(cog._pending), equals=0)
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, member=True)
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    await eventually(lambda: channel.permissions_for(channel.guild.me).send_messages)

    last = await discord_fake.send_message(guild.text, member, f"{at} last")
    assert await answered(discord_fake, guild, last) == "ok"  # the third of three a minute
    asked = [r.last_user_text for r in gemini_fake.requests]
    assert asked == ["alice: first", "alice: second", "alice: last"]


async def test_a_mention_in_a_locked_thread_costs_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Only those who manage threads write in a locked thread: a moderator's mention there
    gets no answer Discord would refuse, and Google is not asked (and billed) for one."""
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)  # no Manage Threads
    closed = guild.add_thread(guild.text, "closed", member)
    closed.locked = True
    await start_bot(ai_settings())
    at = mention(discord_fake)
    await discord_fake.send_message(closed, member, f"{at} still there?")

    last = await discord_fake.send_message(guild.text, member, f"{at} last")
    assert await answered(discord_fake, guild, last) == "ok"
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: last"]
    assert discord_fake.messages_in(closed) == []


async def test_messages_waiting_in_a_channel_deleted_meanwhile_cost_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """No answer to a message waiting in a channel deleted since could be shown: Google is
    not asked for one, and its rate limit is given back."""
    doomed = guild.add_text_channel("doomed")
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings(ai_user_messages_per_minute=2))
    cog = cast(AI, bot.get_cog("AI"))
    at = mention(discord_fake)
    await discord_fake.send_message(doomed, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    await discord_fake.send_message(doomed, member, f"{at} second")
    await eventually(lambda: len(cog._pending), equals=2)
    guild.delete_channel(doomed)
    await eventually(lambda: len(cog._pending), equals=0)

    last = await discord_fake.send_message(guild.text, member, f"{at} last")
    assert await answered(discord_fake, guild, last) == "ok"  # not refused: 2 a minute
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: first", "alice: last"]


async def test_messages_waiting_in_a_server_that_removed_the_bot_cost_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Nor is Google asked to answer a message waiting in a server that removed the bot."""
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    await discord_fake.send_message(guild.text, member, f"{at} second")
    await eventually(lambda: len(cog._pending), equals=2)
    discord_fake.remove_guild(guild)
    await eventually(lambda: len(cog._pending), equals=0)

    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "last")
    await discord_fake.wait_for_message(dm, predicate=lambda m: m.content == "ok")
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: first", "alice: last"]


async def remembered(bot: Bot, guild: FakeGuild, message: FakeMessage) -> None:
    """A conversation memory holding `message`, as memory left it when it was on."""
    memory_id = await bot.db.fetchval(
        "INSERT INTO memories (scope, author_id, author_name, source, text, channel_id, "
        "turns, created_at, model, vector) VALUES (?, ?, ?, 'conversation', ?, ?, 1, 0, "
        "'test', ?) RETURNING id",
        (
            f"guild:{guild.id}",
            message.author.id,
            "alice",
            f"alice: {message.content}",
            guild.text.id,
            bytes(4),
        ),
    )
    await bot.db.execute(
        "INSERT INTO memory_turns (memory_id, turn_id, message_id) VALUES (?, ?, ?)",
        (memory_id, memory_id, message.id),
    )


async def test_with_memory_off_memories_of_deleted_or_edited_messages_go(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Memory switched off for a while keeps what it remembered for when it is on again:
    a message deleted (or edited) in Discord meanwhile must not be recalled then."""
    bot = await start_bot(ai_settings(memory_enabled=False))
    deleted = await discord_fake.send_message(guild.text, member, "my PIN is 4821")
    edited = await discord_fake.send_message(guild.text, member, "my card is 4000")
    kept = await discord_fake.send_message(guild.text, member, "I like kayaking")
    for message in (deleted, edited, kept):
        await remembered(bot, guild, message)

    discord_fake._delete_message(deleted)
    discord_fake.edit_by_author(edited, "my card is none of your business")

    async def texts() -> list[str]:
        rows = await bot.db.fetchall("SELECT text FROM memories ORDER BY id")
        return [row[0] for row in rows]

    await eventually(texts, equals=["alice: I like kayaking"])


async def test_the_first_exchange_of_a_conversation_reset_meanwhile_is_not_stored(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """`/ai reset` while the first message of a conversation waits for its reply: that
    message is forgotten too, as one with messages before it is, not stored once the
    reply comes (and read by every later reply there)."""
    bot = await start_bot(ai_settings())
    at = mention(discord_fake)
    await discord_fake.send_message(guild.text, member, f"{at} hi")  # elsewhere: a log exists
    await eventually(lambda: bot.chats.count(guild.text.id), equals=2)
    thread = guild.add_thread(guild.text, "keys", member)
    await eventually(lambda: bot.get_channel(thread.id))
    gemini_fake.reply(["Looks valid."], chunk_delay=1.0)  # slow first words
    await discord_fake.send_message(thread, member, f"{at} is my key sk-4821 valid?")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 2 or None)
    reset = await discord_fake.invoke_slash(thread, discord_fake.owner, "ai", subcommand="reset")
    assert "(0 messages)" in (await discord_fake.answer(reset)).content
    await discord_fake.wait_for_message(thread, predicate=lambda m: m.content == "Looks valid.")
    await discord_fake.send_message(thread, member, f"{at} hello again")
    await eventually(lambda: bot.chats.count(thread.id), equals=2)  # answered after it

    assert "sk-4821" not in json.dumps(gemini_fake.requests[-1].contents)
    turns = await bot.chats.turns(thread.id)
    assert [t.content for t in turns] == ["hello again", "ok"]


async def test_a_threads_first_exchange_reads_the_message_the_thread_started_from(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A thread made from a person's message (no longer in the bot's cache: fetched) or
    from a reply of the bot's: its first question is about that message, which the
    thread's history then holds once."""
    bot = await start_bot(ai_settings())
    said = await discord_fake.send_message(guild.text, member, "Who won the 1998 World Cup?")
    forget_cached(bot)
    thread = guild.add_thread(guild.text, "cup", member, thread_id=said.id)
    for n, text in enumerate(("and who scored?", "in which minutes?")):
        asked = await discord_fake.send_message(thread, member, f"{mention(discord_fake)} {text}")
        await discord_fake.wait_for_message(thread, after=n)
        await eventually(lambda: len(gemini_fake.requests), equals=n + 1)
        sent = "\n".join(texts(gemini_fake.requests[-1].contents))
        note = "[this thread was started from a message of "
        assert sent.count(note) == 1 and "1998 World Cup?]" in sent, sent
        assert asked.id != said.id

    gemini_fake.reply("Try Iceberg roses.")
    question = await discord_fake.send_message(
        guild.text, member, f"{mention(discord_fake)} roses?"
    )
    assert await answered(discord_fake, guild, question) == "Try Iceberg roses."
    starter = replies_to(discord_fake, guild, question)[0]
    roses = guild.add_thread(guild.text, "roses", member, thread_id=starter.id)
    await discord_fake.send_message(roses, member, f"{mention(discord_fake)} why those?")
    await discord_fake.wait_for_message(roses)
    assert f"started from a message of {BOT_LABEL}: Try Iceberg roses.]" in (
        gemini_fake.requests[-1].last_user_text
    )


async def test_an_edit_of_a_threads_first_question_keeps_the_note_of_its_start(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The note of the message a thread was started from is no part of the question its
    first exchange holds it with: an edit of the question (read again once answered, or
    edited while answered) changes the question's words, and the note stays."""
    bot = await start_bot(ai_settings())
    at = mention(discord_fake)
    said = await discord_fake.send_message(guild.text, member, "Who won the 1998 World Cup?")
    thread = guild.add_thread(guild.text, "cup", member, thread_id=said.id)
    gemini_fake.reply(["France, ", "3-0."], chunk_delay=0.3)
    asked = await discord_fake.send_message(thread, member, f"{at} and who scored?")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    discord_fake.edit_by_author(asked, f"{at} and who scored the goals?")  # while answered
    await discord_fake.wait_for_message(thread, predicate=lambda m: m.content == "France, 3-0.")
    note = "[this thread was started from a message of alice: Who won the 1998 World Cup?]"

    async def question() -> str:
        return (await bot.chats.turns(thread.id))[0].content

    await eventually(question, equals=f"and who scored the goals? {note}")
    forget_cached(bot)  # the message the thread started from is fetched now
    discord_fake.edit_by_author(asked, f"{at} and who scored, in the final?")
    await eventually(question, equals=f"and who scored, in the final? {note}")
