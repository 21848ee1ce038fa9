"""A storm of 503s and a hanging model: the breaker opens, refuses fast, recovers; waits end.

tests/e2e/test_ai_chat.py checks the breaker with one message at a time. Here several
channels hit a failing model at once: no request may pass an open breaker, every
message still gets one quick answer, a failed trial call re-opens it, a good one
closes it. A model that hangs (before or during its reply) ends in an error within
GEMINI_TIMEOUT x attempts, whatever other deadline the bot adds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from config import Settings
from tests.conftest import BASIC, StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from tests.fakes.gemini_server import FakeGemini
from tests.reliability.conftest import answered, mention

pytestmark = pytest.mark.reliability

THRESHOLD = 3
RESET = 3.0  # long enough that the storm below ends before the breaker half-opens
UNAVAILABLE = re.compile(r"AI is unavailable, try again in \d+ s\.")
TIMEOUT = 1.0
RETRIES = 1
MAX_BACKOFF = 0.5  # the provider's first backoff is at most its base delay


def reply_time(fake: FakeDiscord, sent: FakeMessage) -> float:
    """When the POST of the bot's reply to `sent` reached the fake (monotonic)."""
    for request in fake.requests:
        body = request.json if isinstance(request.json, dict) else {}
        if str((body.get("message_reference") or {}).get("message_id")) == str(sent.id):
            return request.time
    raise AssertionError(f"no reply to message {sent.id} was posted")


def gemini_state(bot: object) -> str:
    return bot.gemini.breaker.state


async def test_503_storm_opens_the_breaker_refuses_fast_and_recovers(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    channels = [guild.text, *(guild.add_text_channel(f"storm-{i}") for i in range(2))]
    users = [member, *(discord_fake.add_user(f"user{i}") for i in range(3))]
    for user in users[1:]:
        guild.add_member(user, permissions=BASIC)
    gemini_fake.fail(503, times=THRESHOLD)
    bot = await start_bot(
        ai_settings(ai_breaker_threshold=THRESHOLD, gemini_max_retries=0, ai_breaker_reset=RESET)
    )

    storm: list[tuple[float, FakeMessage]] = []
    for round_, user in enumerate(users):
        for channel in channels:
            started = time.monotonic()
            message = await discord_fake.send_message(channel, user, f"{mention(discord_fake)} hi")
            storm.append((started, message))
        if round_ == 0:
            # The first message of each channel reaches the failing model. How far their
            # calls overlap depends on the machine and the storage, so the next round waits
            # for them: otherwise a channel's second call may be let in while fewer than
            # THRESHOLD failures have come back (the breaker is still closed then).
            for _, message in storm:
                await answered(discord_fake, message)
    replies = [(await answered(discord_fake, message)).content for _, message in storm]

    assert len(gemini_fake.requests) == THRESHOLD, "no request passed the open breaker"
    assert gemini_state(bot) == "open"
    refused = [UNAVAILABLE.fullmatch(text) for text in replies]
    assert sum(map(bool, refused)) >= len(storm) - THRESHOLD, replies
    errors = ("AI is unavailable", "The AI is not answering")
    assert all(text.startswith(errors) for text in replies), replies
    waits = [
        reply_time(discord_fake, message) - started
        for (started, message), match in zip(storm, refused, strict=True)
        if match
    ]
    assert max(waits) < 1.0, f"an open breaker answers at once: {sorted(waits)}"

    # Half-open: one trial call; failing, it re-opens the breaker.
    await discord_fake.wait_for(lambda: gemini_state(bot) == "half_open", timeout=RESET + 2)
    gemini_fake.fail(503)
    trial = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} now?")
    assert UNAVAILABLE.fullmatch((await answered(discord_fake, trial)).content)
    assert len(gemini_fake.requests) == THRESHOLD + 1
    assert gemini_state(bot) == "open"

    # A trial that succeeds closes it, and the bot answers normally again.
    await discord_fake.wait_for(lambda: gemini_state(bot) == "half_open", timeout=RESET + 2)
    gemini_fake.reply("Back again.")
    back = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} now?")
    assert (await answered(discord_fake, back)).content == "Back again."
    assert gemini_state(bot) == "closed"
    more = await discord_fake.send_message(channels[1], users[1], f"{mention(discord_fake)} ok?")
    assert (await answered(discord_fake, more)).content == "ok"


async def test_hanging_model_ends_in_an_error_within_bounds(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    for _ in range(RETRIES + 1):
        gemini_fake.hang()
    await start_bot(ai_settings(gemini_timeout=TIMEOUT, gemini_max_retries=RETRIES))
    started = time.monotonic()
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello?")
    error = (await answered(discord_fake, sent)).content
    waited = reply_time(discord_fake, sent) - started

    assert re.search(r"\bAI\b", error) and error != "ok", error
    assert 1 <= len(gemini_fake.requests) <= RETRIES + 1
    assert waited < TIMEOUT * (RETRIES + 1) + MAX_BACKOFF + 2.0, waited
    after = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} again")
    assert (await answered(discord_fake, after)).content == "ok", "the channel is not stuck"


async def test_model_hanging_mid_reply_is_cut_off_within_bounds(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    gemini_fake.stall_stream_after(["The answer begins ", "and then"])
    await start_bot(ai_settings(gemini_timeout=TIMEOUT, gemini_max_retries=RETRIES))
    started = time.monotonic()
    sent = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} go")
    reply = await discord_fake.wait_for(
        lambda: [m for m in discord_fake.messages_in(guild.text) if "⚠️" in m.content], timeout=15
    )
    waited = time.monotonic() - started

    (cut,) = reply
    assert cut.reference == sent.id
    assert cut.content.startswith("The answer begins and then") and "⌛" not in cut.content
    assert waited < TIMEOUT + 2.0, waited
    assert len(gemini_fake.requests) == 1, "a reply already shown is not retried"
    after = await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} again")
    assert (await answered(discord_fake, after)).content == "ok", "the channel is not stuck"
