"""Discord asking for a wait longer than the bot waits out (30 s): a channel renamed twice
in 10 minutes, a long slowmode. Whoever asked hears it at once (where slowmode does not
hold that too), and nothing crashes or logs a traceback. The real bot against the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from cogs.admin.maintenance import Maintenance
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_ai_tools_server import UNLIMITED, responses, server_on
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.fakes.discord_models import DEFAULT_PERMS, TEXT_CHANNEL
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini

LIMITED = "Discord is limiting how often that can be done; try again in 10 minutes."

pytestmark = pytest.mark.backends("sqlite")  # Discord's answers, not the storage's


async def test_a_tool_call_discord_rate_limits_is_refused_at_once_and_changes_nothing(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    mod: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    run: Callable[..., Any],
) -> None:
    """Not waited out for 10 minutes, the tool timing out meanwhile and the asker told it
    may have been done: refused, with the wait."""
    old = guild.add_text_channel("old-news")
    await start_bot(ai_settings(**UNLIMITED))
    await server_on(discord_fake, guild)
    discord_fake.rate_limited[("PATCH", f"/channels/{old.id}")] = 600

    await run(mod, [("rename_channel", {"channel": "#old-news", "name": "news"})])

    refused = responses(gemini_fake)["rename_channel"]["refused"]
    assert refused.startswith("Not done, nothing changed: Discord limits how often")
    assert refused.endswith("it can be tried again in 10 minutes.")
    assert old.name == "old-news"


async def test_a_command_discord_rate_limits_says_how_long_to_wait(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    await start_bot()
    commands = f"/applications/{discord_fake.application_id}/guilds/{guild.id}/commands"
    discord_fake.rate_limited[("PUT", commands)] = 599.5

    await discord_fake.send_message(guild.text, discord_fake.owner, "!sync")

    reply = await discord_fake.wait_for_message(guild.text)
    assert reply.content == LIMITED


async def test_a_long_slowmode_holding_the_bots_messages_is_not_waited_out(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slowmode holds the bot's next message for a minute: a command's answer and an AI
    reply (and why there is none) are given up, logged without a traceback; the rest of
    the bot goes on."""
    slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    await start_bot(ai_settings())
    mention = f"<@{discord_fake.bot_user.id}>"
    await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for_message(slow, predicate=lambda m: m.content.startswith("Pong"))

    def posts() -> int:
        path = f"/channels/{slow.id}/messages"
        return sum(r.method == "POST" and r.path == path for r in discord_fake.requests)

    await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for(lambda: posts() == 3)  # the answer, then the error's
    await discord_fake.send_message(slow, member, f"{mention} hello")
    await discord_fake.wait_for(lambda: posts() == 5)  # the reply, then why there is none
    await discord_fake.send_message(guild.text, member, f"{mention} hello")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content == "ok")

    assert [m.content[:5] for m in discord_fake.messages_in(slow, from_bot=True)] == ["Pong!"]
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith("could not send the error reply in channel") for w in warned)
    assert any(w.startswith("could not say why there is no reply") for w in warned)


async def test_a_dev_guild_sync_discord_rate_limits_does_not_stop_the_start(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    commands = f"/applications/{discord_fake.application_id}/guilds/{guild.id}/commands"
    discord_fake.rate_limited[("PUT", commands)] = 600  # DEV_GUILD_ID is that guild

    await start_bot()

    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)


async def test_shutdown_stops_the_bot_though_slowmode_holds_its_word(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    bot = await start_bot()
    await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for_message(slow, predicate=lambda m: m.content.startswith("Pong"))

    await discord_fake.send_message(slow, discord_fake.owner, "!shutdown")

    await discord_fake.wait_for(bot.is_closed)


async def test_a_channel_check_discord_rate_limits_keeps_the_data_and_the_pass_going(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """The daily look for channels deleted while the bot was away: a lookup Discord holds
    back is no answer (the data stays), not an error that ends the daily pass for good."""
    bot = await start_bot(make_settings(memory_enabled=False), extensions=["cogs.admin"])
    unknown = guild.text.id + 1000  # a channel the cache does not know: Discord is asked
    await ChatStore(bot.db).add_turns(guild.id, unknown, [Turn("user", member.id, "al", "hi")])
    discord_fake.rate_limited[("GET", f"/channels/{unknown}")] = 600
    cog = cast(Maintenance, bot.get_cog("Maintenance"))  # reloaded with each bot: no isinstance

    await cog.schedule_gone()

    assert await cog.pending.targets("channel") == set()


async def test_a_notice_slowmode_holds_is_given_up_without_a_traceback(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Why a mention gets no reply (here: AI is not configured) is a notice slowmode holds
    too: given up, in one line of the log."""
    slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    await start_bot()  # no GEMINI_API_KEY
    await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for_message(slow, predicate=lambda m: m.content.startswith("Pong"))

    await discord_fake.send_message(slow, member, f"<@{discord_fake.bot_user.id}> hello")
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)

    assert [m.content[:5] for m in discord_fake.messages_in(slow, from_bot=True)] == ["Pong!"]
    await discord_fake.wait_for(lambda: "could not send a notice" in caplog.text)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
