"""AI replies end to end: a prompt refused for what was said before it points to
`/ai reset`; `/chat` waiting in a channel deleted meanwhile costs no AI request."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from cogs.ai.cog import AI
from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_ai_chat import ask
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
