"""Discord asking for a wait longer than the bot waits out (30 s): a channel renamed twice
in 10 minutes, a long slowmode. Whoever asked hears it at once (where slowmode does not
hold that too), and nothing crashes or logs a traceback. The real bot against the fakes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import discord
import pytest

from cogs.admin.maintenance import Maintenance
from cogs.ai.records import WRITING, Turn
from cogs.ai.store import ChatStore
from cogs.ai.streaming import RESTART, WRITING_MARKER
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.e2e.test_ai_tools_server import UNLIMITED, responses, server_on
from tests.e2e.test_ai_tools_server import mod as mod  # a fixture
from tests.e2e.test_ai_tools_server import run as run  # a fixture
from tests.e2e.test_retention import maintenance, pending
from tests.e2e.test_roleplay_characters import Slash
from tests.e2e.test_roleplay_scenes import MANAGE_WEBHOOKS, SEND_MESSAGES, World, scenes
from tests.e2e.test_roleplay_scenes import world as world  # a fixture
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
    the bot goes on. The command's error reply, held too, was lost: the member never
    learnt their command failed. Slowmode holds no reactions: a 🐢 on their message says
    slowmode held its answer, a ❌ that it failed (here: a missing permission)."""
    slow = guild.add_channel("slow", TEXT_CHANNEL, rate_limit_per_user=60)
    guild.add_member(discord_fake.bot_user, permissions=DEFAULT_PERMS)
    await start_bot(ai_settings())
    mention = f"<@{discord_fake.bot_user.id}>"
    await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for_message(slow, predicate=lambda m: m.content.startswith("Pong"))

    def posts() -> int:
        path = f"/channels/{slow.id}/messages"
        return sum(r.method == "POST" and r.path == path for r in discord_fake.requests)

    held = await discord_fake.send_message(slow, member, "!ping")
    await discord_fake.wait_for(lambda: posts() == 3)  # the answer, then the error's
    await discord_fake.wait_for(lambda: held.reactions == {"🐢": [discord_fake.bot_user.id]})
    refused = await discord_fake.send_message(slow, member, "!settings prefix $")
    await discord_fake.wait_for(lambda: refused.reactions == {"❌": [discord_fake.bot_user.id]})
    await discord_fake.send_message(slow, member, f"{mention} hello")
    await discord_fake.wait_for(lambda: posts() == 6)  # the reply, then why there is none
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


async def test_scenes_ended_by_deleted_characters_discord_holds_the_notice_of_end_each(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The notice that its characters were deleted, held back (a long slowmode, say), is
    given up in one line, not a traceback that leaves the next scene running."""
    bot = await start_bot(ai_settings())
    side = guild.add_text_channel("side")
    await world.character("Aria")
    for channel in (guild.text, side):
        await world.slash(member, "start", channel, characters="Aria")
        discord_fake.rate_limited[("POST", f"/channels/{channel.id}/messages")] = 60

    await Slash(discord_fake, guild)(discord_fake.owner, "delete", name="Aria")

    await discord_fake.wait_for(lambda: caplog.text.count("that its scene ended") == 2)
    assert not any(scenes(bot).scenes.running(c.id) for c in (guild.text, side))
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


@pytest.mark.shards(2)
async def test_a_guild_lookup_discord_rate_limits_keeps_the_data_in_one_log_line(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    far: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whether the bot is still in another shard process's guild, Discord holds back: no
    answer, so its data and its pending deletion stay for the next pass."""
    settings = make_settings(shard_count=2, shard_ids="0", memory_enabled=False)
    bot = await start_bot(settings, extensions=["cogs.admin"])
    await bot.guild_settings.set_prefix(far.id, "?")
    await maintenance(bot).pending.schedule("guild", far.id)  # as if shard 1 saw it leave
    discord_fake.rate_limited[("GET", f"/guilds/{far.id}")] = 600

    await maintenance(bot, days_from_now=8).retention_loop()

    assert await pending(bot) == [("guild", far.id)]
    assert bot.guild_settings.prefix(far.id) == "?"
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    assert "Discord holds back guild lookups for 600 s" in caplog.text


async def test_a_typed_commands_refusal_slowmode_holds_marks_its_message_failed(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """`!character create` of a name taken, under a long slowmode: the refusal was held,
    the owner never told. A ❌ on their message says it failed (a webhook answers what
    was done, `cogs.roleplay.cog`, not the error handler)."""
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    await start_bot(ai_settings())
    await world.character("Aria")
    await discord_fake.send_message(guild.text, discord_fake.owner, "!ping")  # holds the next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    typed = await discord_fake.send_message(
        guild.text, discord_fake.owner, '!character create Aria "Another one."'
    )

    await discord_fake.wait_for(lambda: typed.reactions == {"❌": [discord_fake.bot_user.id]})


async def test_a_scene_turn_a_long_slowmode_holds_without_a_webhook_is_given_up_in_log_lines(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No Manage Webhooks: the characters speak as the bot, whose messages slowmode holds.
    Why they speak as the bot, and the turn, are given up (logged), not a traceback."""
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC)
    await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    await discord_fake.send_message(guild.text, member, "!ping")  # slowmode holds the bot next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    await discord_fake.send_message(guild.text, member, "hello")

    await discord_fake.wait_for(lambda: "could not say why there is no reply" in caplog.text)
    assert "why characters speak as me" in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


async def test_a_typed_scene_start_slowmode_holds_without_a_webhook_starts_in_log_lines(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scene is saved before its word and first messages are held: the log says it
    started without them, not that the command failed (to try again in 10 minutes)."""
    guild.text.rate_limit_per_user = 600
    guild.add_member(discord_fake.bot_user, permissions=BASIC)
    bot = await start_bot(ai_settings())
    await world.character("Aria", first_message="Well met.")
    await discord_fake.send_message(guild.text, member, "!ping")  # slowmode holds the bot next
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: m.content[:5] == "Pong!")

    await discord_fake.send_message(guild.text, member, "!scene start Aria")

    await discord_fake.wait_for(lambda: "without its first messages" in caplog.text)
    assert "done, but Discord holds the word of it" in caplog.text
    assert "could not send the error reply" not in caplog.text
    assert scenes(bot).scenes.running(guild.text.id)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


async def test_replies_left_unfinished_are_all_finalised_though_discord_holds_a_part(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A message of the last run, full, gets the restart note in a new message, which
    Discord holds back: that one is given up in a line of the log, and the next reply is
    finalised all the same."""
    settings = ai_settings()
    bot = await start_bot(settings, extensions=[])
    channel = bot.get_channel(guild.text.id)
    assert isinstance(channel, discord.TextChannel)
    full = await channel.send("a" * (2000 - len(WRITING_MARKER)) + WRITING_MARKER)
    half = await channel.send("Half" + WRITING_MARKER)
    for message in (full, half):
        turn = Turn("model", discord_fake.bot_user.id, "ai", "…", message.id, WRITING)
        await bot.chats.add_turns(guild.id, guild.text.id, [turn])
    await bot.close()
    discord_fake.rate_limited[("POST", f"/channels/{guild.text.id}/messages")] = 600
    caplog.set_level(logging.INFO, logger="cogs.ai.unfinished")

    bot = await start_bot(settings, extensions=["cogs.ai"])

    await eventually(lambda: bot.chats.unfinished(10, lambda _: True), equals=[])
    assert [t.incomplete for t in await bot.chats.turns(guild.text.id)] == [RESTART, RESTART]
    assert "stays as it is: RateLimited" in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


async def test_a_paused_scenes_starter_discord_holds_a_dm_to_is_not_told_in_one_log_line(
    world: World,
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    guild.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_WEBHOOKS)
    await start_bot(ai_settings())
    await world.character("Aria")
    await world.slash(member, "start", characters="Aria")
    guild.set_overwrite(guild.text, discord_fake.bot_user.id, deny=SEND_MESSAGES, member=True)
    discord_fake.rate_limited[("POST", "/users/@me/channels")] = 600
    caplog.set_level(logging.INFO, logger="cogs.roleplay.director")

    await discord_fake.send_message(guild.text, member, "anyone?")

    await discord_fake.wait_for(lambda: "could not tell the starter" in caplog.text)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
