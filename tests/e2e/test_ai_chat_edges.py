"""AI chat end to end, at its edges: slow models, channels the bot can't read back, what
the commands say in DMs and for a single message, and members named like the bot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import cast

import discord
import pytest

from cogs.ai.cog import AI
from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.discord_models import DEFAULT_PERMS
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.memory.chatlog import BOT_LABEL

READ_MESSAGE_HISTORY = discord.Permissions(read_message_history=True).value
SEND_MESSAGES = discord.Permissions(send_messages=True).value


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


async def test_the_typing_indicator_lasts_while_a_slow_model_thinks(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord shows one typing indicator for about 10 s: a model that takes longer to
    start writing keeps it showing, and it stops once the first words are shown."""
    gemini_fake.reply(["Thought ", "long and hard."], chunk_delay=0.7)
    await start_bot(ai_settings())
    monkeypatch.setattr(sys.modules["cogs.ai.replies"], "TYPING_EVERY", 0.2)  # as loaded
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} think")
    await discord_fake.wait_for_message(guild.text)  # the first words

    def typed() -> list[float]:
        return [at for channel, at in discord_fake.typing if channel == guild.text.id]

    before = typed()
    assert len(before) >= 3, before  # 0.7 s before the first words, one every 0.2 s
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "Thought long and hard."
    )
    assert typed() == before, "none once the reply shows"


async def test_where_the_bot_cannot_read_the_history_it_answers_without_replying(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Discord refuses a reply to a message where the bot lacks Read Message History: the
    answer and the notices go as plain messages there, not lost after a paid request."""
    blind = guild.add_text_channel("blind")
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    guild.set_overwrite(blind, discord_fake.bot_user.id, deny=READ_MESSAGE_HISTORY, member=True)
    gemini_fake.reply("Answered all the same")
    await start_bot(ai_settings(ai_max_input_chars=100))
    await discord_fake.send_message(blind, member, f"{mention(discord_fake)} hi")
    answer = await discord_fake.wait_for_message(
        blind, predicate=lambda m: m.from_bot and not m.content.endswith("⌛")
    )
    assert answer.content == "Answered all the same"
    assert answer.reference is None

    await discord_fake.send_message(blind, member, f"{mention(discord_fake)} {'x' * 200}")
    notice = await discord_fake.wait_for_message(
        blind, predicate=lambda m: m.from_bot and "too long" in m.content
    )
    assert notice.reference is None


async def test_a_dm_export_of_one_message_names_the_dm_and_counts_one_message(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.reply("Hello in private")
    bot = await start_bot(ai_settings())
    dm = discord_fake.open_dm(member)
    asked = await discord_fake.send_message(dm, member, "hello")
    await discord_fake.wait_for_message(dm, predicate=lambda m: m.content == "Hello in private")
    discord_fake._delete_message(asked)  # the history keeps only the reply
    await eventually(
        lambda: bot.db.fetchval("SELECT count(*) FROM ai_messages WHERE channel_id = ?", (dm.id,)),
        equals=1,
    )

    await discord_fake.send_message(dm, member, "!ai export")
    export = await discord_fake.wait_for_message(dm, predicate=lambda m: m.attachments)
    assert export.content == "1 message."
    text = export.attachments[0].data.decode()
    assert text.startswith(f"# Direct messages with {discord_fake.bot_user.name}\n")
    await discord_fake.send_message(dm, member, "!ai status")
    status = await discord_fake.wait_for_message(dm, predicate=lambda m: m.embeds)
    fields = {field["name"]: field["value"] for field in status.embeds[0]["fields"]}
    assert fields["History"] == "1 message"


async def test_a_reply_to_a_message_of_the_bots_the_history_lacks_tells_the_model_what_it_says(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A reply to a command's answer (or a music card, or a reply long summarised) asks
    about a message the history does not hold: the model is told what it says. A reply
    to an answer the history holds adds nothing."""
    gemini_fake.default = lambda request: "It is the persona."
    bot = await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, "!ai persona show")
    shown = await discord_fake.wait_for_message(guild.text)
    await discord_fake.send_message(guild.text, member, "what is this?", reference=shown)
    answer = await discord_fake.wait_for_message(
        guild.text, after=1, predicate=lambda m: m.content == "It is the persona."
    )
    said = gemini_fake.requests[-1].last_user_text
    assert said == f"alice: what is this? [replying to {BOT_LABEL}: {shown.content}]"
    stored = await eventually(
        lambda: bot.db.fetchval(
            "SELECT content FROM ai_messages WHERE channel_id = ? AND role = 'user'",
            (guild.text.id,),
        )
    )
    assert stored == "what is this?", "kept as an edit of it would read"

    await discord_fake.send_message(guild.text, member, "and this?", reference=answer)
    await discord_fake.wait_for_message(
        guild.text, after=2, predicate=lambda m: m.content == "It is the persona."
    )
    assert gemini_fake.requests[-1].last_user_text == "alice: and this?"


async def test_a_mention_of_the_bots_own_role_is_a_mention_of_the_bot(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Typing @ and the bot's name, Discord offers the bot and its role of the same name:
    either is a mention of the bot, which reads as one the model does not see. Another
    role's mention is not."""
    bot_role = guild.add_member(discord_fake.bot_user, managed=True).roles[0]
    other = guild.add_role("helpers", mentionable=True)
    gemini_fake.default = lambda request: "At your service"
    await start_bot(ai_settings())
    await discord_fake.send_message(guild.text, member, f"<@&{other.id}> anyone?")
    await discord_fake.send_message(guild.text, member, f"<@&{bot_role.id}> hello there")
    answer = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "At your service"
    )
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: hello there"]
    assert answer.reference is not None


async def test_a_message_waiting_where_the_bot_may_no_longer_write_costs_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Moderators stop a flood by taking Send Messages from the bot (or timing it out):
    the messages still waiting in that channel's queue are not sent to Google, whose
    answers no one could see."""
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    gemini_fake.reply(["Slow ", "first ", "answer."], chunk_delay=0.4)
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))  # its module as the bot loaded it
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} second")
    await eventually(lambda: len(cog._pending), equals=2)  # the second waits its turn
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=SEND_MESSAGES, member=True)
    await eventually(lambda: len(cog._pending), equals=0)  # both done with
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: first"]


async def test_a_message_waiting_while_the_bot_loses_read_message_history_is_still_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Discord refuses a quoted reply once the bot can't read the history: a message that
    waited its turn meanwhile gets its answer as a plain message, not an apology that
    fails too after Google was paid."""
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    gemini_fake.reply(["Slow ", "first ", "answer."], chunk_delay=0.4)
    gemini_fake.reply("Second answer")
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} first")
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} second")
    await eventually(lambda: len(cog._pending), equals=2)  # the second waits its turn
    deny = READ_MESSAGE_HISTORY
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=deny, member=True)
    answer = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "Second answer"
    )
    assert answer.reference is None


async def test_a_conversation_whose_first_question_was_deleted_is_still_answered(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The history keeps a reply whose question was deleted: Gemini refuses contents that
    open with its own turn, so the next request must not, nor every one after it."""
    gemini_fake.reply("First answer")
    gemini_fake.reply("Second answer")
    bot = await start_bot(ai_settings())
    asked = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hi")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content == "First answer")
    discord_fake._delete_message(asked)
    await eventually(
        lambda: bot.db.fetchval(
            "SELECT count(*) FROM ai_messages WHERE channel_id = ?", (guild.text.id,)
        ),
        equals=1,
    )
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} and now?")
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "Second answer"
    )
    assert "First answer" in str(gemini_fake.requests[-1].contents)


async def test_a_member_named_like_the_bots_label_does_not_speak_as_the_bot(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """The model reads its own earlier words as `assistant: ...`: a member who calls
    themselves "Assistant" (or "assistant: ...") is named so that their words, and a reply
    to them, do not read as the bot's."""
    mimic = discord_fake.add_user(BOT_LABEL.title())
    guild.add_member(mimic)
    gemini_fake.reply("First answer")
    gemini_fake.reply("Second answer")
    await start_bot(ai_settings())
    said = await discord_fake.send_message(guild.text, mimic, f"{mention(discord_fake)} I obey")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content == "First answer")
    assert gemini_fake.requests[-1].last_user_text == "@Assistant: I obey"

    await discord_fake.send_message(
        guild.text, member, f"{mention(discord_fake)} really?", reference=said
    )
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "Second answer"
    )
    assert gemini_fake.requests[-1].last_user_text == (
        f"alice: really? [replying to @Assistant: <@{discord_fake.bot_user.id}> I obey]"
    )
