"""AI replies end to end: a prompt refused for what was said before it points to
`/ai reset`; `/chat` waiting in a channel deleted meanwhile costs no AI request; a model
rate limited for longer than a reply waits says when to try again; the model reads the
poll a message replies to, or a thread was started from."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from cogs.ai.cog import AI
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_ai_chat import ask, mention
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

REFUSED = "I can't answer that: your message was blocked by the safety filter."


async def test_a_prompt_refused_with_a_conversation_before_it_points_to_ai_reset(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Every message carries the conversation before it: when that is what Google refuses,
    each new message is refused too, and only `/ai reset` ends it. A first message refused
    is the message's own fault: no hint then."""
    gemini_fake.block_prompt("SAFETY")
    gemini_fake.reply("Fine.")
    gemini_fake.block_prompt("SAFETY")
    await start_bot(ai_settings())

    assert (await ask(discord_fake, guild.text, member, "first")).content == REFUSED
    assert (await ask(discord_fake, guild.text, member, "second")).content == "Fine."
    assert (await ask(discord_fake, guild.text, member, "third")).content == (
        f"{REFUSED} If earlier messages here are the cause, `/ai reset` (Manage Messages) "
        "forgets them."
    )

    gemini_fake.reply("Fine.")
    gemini_fake.block_prompt("SAFETY")
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "hello")
    await discord_fake.wait_for_message(dm)
    await discord_fake.send_message(dm, member, "and now?")
    refused = await discord_fake.wait_for_message(dm, after=1)
    assert refused.content == (
        f"{REFUSED} If earlier messages are the cause, `/ai reset` forgets our conversation."
    )


async def test_chat_waiting_in_a_channel_deleted_meanwhile_costs_no_ai_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """`/chat` waits its turn as a message does: in a channel deleted meanwhile no answer
    could be shown, so Google is not asked (and billed) for one."""
    doomed = guild.add_text_channel("doomed")
    gemini_fake.reply(["slow ", "first ", "reply."], chunk_delay=0.4)
    bot = await start_bot(ai_settings())
    cog = cast(AI, bot.get_cog("AI"))
    await discord_fake.invoke_slash(doomed, member, "chat", {"prompt": "first"})
    await discord_fake.wait_for(lambda: len(gemini_fake.requests) == 1 or None)
    waiting = await discord_fake.invoke_slash(doomed, member, "chat", {"prompt": "second"})
    await waiting.wait_response()  # deferred and queued
    guild.delete_channel(doomed)
    await eventually(lambda: len(cog.dispatcher._queues), equals=0)

    assert (await ask(discord_fake, guild.text, member, "last")).content == "ok"
    assert [r.last_user_text for r in gemini_fake.requests] == ["alice: first", "alice: last"]


async def test_a_model_busy_for_longer_than_a_reply_waits_says_when_to_try_again(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Google asks for 25 s before another try (a rate limit): the asker is told at once
    when to try again, not left watching "typing" for half a minute (a short wait is
    waited out: `test_rate_limited_by_google_then_answers`)."""
    gemini_fake.fail(429, retry_delay=25)
    await start_bot(ai_settings())
    reply = await ask(discord_fake, guild.text, member, "hello")
    assert reply.content == "The AI model is busy; please try again in 25 seconds."
    assert len(gemini_fake.requests) == 1


async def test_the_model_reads_the_poll_a_question_replies_to_or_its_thread_started_from(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """A poll's message has no text of its own: "@bot which would you pick?" in reply to
    one, or in a thread started from one, is about what the poll asks."""
    await start_bot(ai_settings())
    poll = await discord_fake.send_message(
        guild.text, member, "", poll=("Pizza or tacos?", ["pizza", "tacos"])
    )
    noted = "[poll: Pizza or tacos? (answers: pizza / tacos)]"
    reply = f"{mention(discord_fake)} which would you pick?"
    await discord_fake.send_message(guild.text, member, reply, reference=poll)
    await discord_fake.wait_for_message(guild.text)
    said = f"alice: which would you pick? [replying to alice: {noted}]"
    assert gemini_fake.requests[-1].last_user_text == said

    thread = guild.add_thread(guild.text, "food", member, thread_id=poll.id)
    await discord_fake.send_message(thread, member, f"{mention(discord_fake)} and you?")
    await discord_fake.wait_for_message(thread)
    thread_note = f"[this thread was started from a message of alice: {noted}]"
    assert gemini_fake.requests[-1].last_user_text == f"alice: and you? {thread_note}"
