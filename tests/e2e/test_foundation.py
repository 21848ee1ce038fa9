"""The bot core end to end: commands, prefixes, owners, cogs, reconnects, shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import pytest
from discord.ext import commands

from bot import discover_extensions
from config import Settings
from tests.conftest import StartBot
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeMessage, FakeUser
from utils.reliability.shutdown import CANCEL_GRACE

ROOT = Path(__file__).resolve().parents[2]


def no_pings(allowed_mentions: dict | None) -> bool:
    """True when a message's allowed_mentions can ping neither @everyone/@here nor roles."""
    assert allowed_mentions is not None, "the bot must always send allowed_mentions"
    return (
        "everyone" not in allowed_mentions.get("parse", [])
        and "roles" not in allowed_mentions.get("parse", [])
        and not allowed_mentions.get("roles")
    )


async def test_prefix_ping(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, member, "!ping")
    reply = await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("Pong!")
    )
    assert "Gateway" in reply.content and "REST" in reply.content
    assert reply.history[0] == "Pinging…"
    assert no_pings(reply.allowed_mentions)


async def test_slash_ping(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    interaction = await discord_fake.invoke_slash(guild.text, member, "ping")
    await interaction.wait_response()
    await discord_fake.wait_for(
        lambda: interaction.original and interaction.original.content.startswith("Pong!")
    )


async def test_a_dev_guild_the_bot_is_not_in_does_not_stop_the_start(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    await start_bot(make_settings(dev_guild_id=guild.id + 12345))
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)
    assert "could not sync slash commands to DEV_GUILD_ID" in caplog.text


async def test_prefix_setting_survives_restart(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    bot = await start_bot(settings)
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "settings", {"prefix": "?"}, subcommand="prefix"
    )
    await interaction.wait_response()  # deferred: the write may wait for another
    assert interaction.ephemeral
    (answer,) = await discord_fake.wait_for(lambda: interaction.followups, timeout=10)
    assert answer.content == "Prefix set to `?`."
    await bot.close()

    await start_bot(settings)
    before = len(discord_fake.messages_in(guild.text))
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.send_message(guild.text, member, "?ping")
    await discord_fake.send_message(guild.text, member, "?stats")  # answered after the two
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.embeds and m.embeds[0]["title"] == "Bot stats"
    )
    pings = [m for m in discord_fake.messages_in(guild.text)[before:] if m.content.startswith("P")]
    assert len(pings) == 1, "only the new prefix is answered"


async def test_prefix_change_needs_manage_server(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot()
    interaction = await discord_fake.invoke_slash(
        guild.text, member, "settings", {"prefix": "$"}, subcommand="prefix"
    )
    response = await interaction.wait_response()
    assert "Manage Server" in response["data"]["content"]
    assert interaction.ephemeral
    await discord_fake.send_message(guild.text, member, "!settings prefix $")
    refusal = await discord_fake.wait_for_message(guild.text)
    assert "Manage Server" in refusal.content
    assert bot.guild_settings.prefix(guild.id) == "!"


async def test_bad_prefix_gets_a_clear_message(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!settings prefix toolong")
    reply = await discord_fake.wait_for_message(guild.text)
    assert reply.content == "A prefix must be 1 to 5 characters."


async def test_a_prefix_with_invisible_characters_is_refused(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot()
    for prefix in ("!\u200b", "\x00?", "\u2060"):  # zero-width space, NUL, word joiner
        interaction = await discord_fake.invoke_slash(
            guild.text, discord_fake.owner, "settings", {"prefix": prefix}, subcommand="prefix"
        )
        response = await interaction.wait_response()
        assert "invisible characters" in response["data"]["content"], repr(prefix)
    assert bot.guild_settings.prefix(guild.id) == "!"


async def test_help_explains_a_command_whose_name_starts_with_the_prefix(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!settings prefix s")
    await discord_fake.wait_for_message(guild.text)
    for n, asked in enumerate(("stats", "sstats")):
        await discord_fake.send_message(guild.text, member, f"shelp {asked}")
        explained = await discord_fake.wait_for_message(guild.text, after=1 + n)
        assert explained.embeds and explained.embeds[0]["title"] == "sstats", asked


async def test_mention_is_always_a_prefix(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, member, f"<@{discord_fake.bot_user.id}> ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)


async def test_owner_commands_refuse_others(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot()
    await discord_fake.send_message(guild.text, member, "!shutdown")
    reply = await discord_fake.wait_for_message(guild.text)
    assert reply.content == "This command is for the bot owner."
    assert not bot.is_closed()
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)


async def test_owner_shutdown_stops_the_bot(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    bot = await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!shutdown")
    reply = await discord_fake.wait_for_message(guild.text)
    assert reply.content == "Shutting down."
    await discord_fake.wait_for(bot.is_closed)
    await bot.close()  # waits for the shutdown already under way to finish
    with pytest.raises(RuntimeError, match="not open"):
        await bot.db.ping()


async def test_what_start_up_made_is_left_out_of_full_collections(start_bot: StartBot) -> None:
    bot = await start_bot()
    admin = bot.get_cog("Admin")
    assert admin is not None and gc.is_tracked(admin)
    assert gc.get_freeze_count() > 0
    assert all(tracked is not admin for tracked in gc.get_objects())  # frozen: never scanned
    await bot.close()
    assert gc.get_freeze_count() == 0  # collectable again once the bot has stopped


async def test_owner_reload_and_sync(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload admin")
    assert (await discord_fake.wait_for_message(guild.text)).content == "Reloaded `cogs.admin`."
    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload nosuchcog")
    failed = await discord_fake.wait_for_message(guild.text, after=1)
    assert "Reloading `cogs.nosuchcog` failed" in failed.content
    await discord_fake.send_message(guild.text, discord_fake.owner, "!sync global")
    synced = await discord_fake.wait_for_message(guild.text, after=2)
    assert synced.content.startswith("Synced ") and "(global)" in synced.content
    puts = [r for r in discord_fake.requests if r.method == "PUT" and "guilds" not in r.path]
    assert puts and any(cmd["name"] == "ping" for cmd in puts[-1].json)


@pytest.mark.backends("sqlite")
async def test_reloading_a_cog_under_a_package_that_does_not_exist_says_it_failed(
    discord_fake: FakeDiscord, guild: FakeGuild, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.send_message(guild.text, discord_fake.owner, "!reload nosuch.cog")
    failed = await discord_fake.wait_for_message(guild.text)
    assert failed.content == "Reloading `cogs.nosuch.cog` failed: ModuleNotFoundError."


async def test_failing_cog_does_not_stop_the_others(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(extensions=["tests.e2e.broken_cog", *discover_extensions()])
    assert "tests.e2e.broken_cog" in bot.failed_extensions
    assert "cogs.admin" in bot.extensions
    assert "could not load tests.e2e.broken_cog" in caplog.text
    await discord_fake.send_message(guild.text, member, "!stats")
    stats = await discord_fake.wait_for_message(guild.text)
    fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
    assert fields["Cogs that failed to load"] == "tests.e2e.broken_cog"
    assert fields["Guilds"] == "1"
    assert fields["Circuits"] == "none yet"  # no GEMINI_API_KEY: no breaker


async def test_errors_user_and_unexpected(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_bot(extensions=[*discover_extensions(), "tests.e2e.boom_cog"])
    await discord_fake.send_message(guild.text, member, "!nosuchcommand")
    await discord_fake.send_message(guild.text, member, "!boom")
    apology = await discord_fake.wait_for_message(guild.text)
    assert apology.content.startswith("Sorry, something went wrong on my side. Reference: `")
    reference = apology.content.split("`")[1]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and reference in r.message]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert len(discord_fake.messages_in(guild.text)) == 1, "unknown commands are ignored"

    interaction = await discord_fake.invoke_slash(guild.text, member, "boom")
    response = await interaction.wait_response()
    assert "Reference" in response["data"]["content"] and interaction.ephemeral

    await discord_fake.send_message(guild.text, member, "!help nosuch")
    unknown = await discord_fake.wait_for_message(guild.text, after=1)
    assert unknown.content == "No command called `nosuch`."


async def test_server_commands_in_a_dm_say_they_need_a_server(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """A server's commands typed with the prefix in a DM (Discord offers their slash forms
    in servers only) get one plain line, the subcommands of a server-only group too."""
    await start_bot()
    dm = discord_fake.open_dm(member)
    asked = [
        "!play something",
        "!queue",
        "!playlist list",
        "!247 on",
        "!music dj",
        "!settings",
        "!settings prefix ?",
        "!character list",
        "!character show Hana",
        "!scene end",
        "!scene state",
        "!ai autorespond on",
        "!ai tools",
        "!ai prompt hi",
        "!memory stats",
    ]
    for count, text in enumerate(asked, start=1):
        await discord_fake.send_message(dm, member, text)
        answer = await discord_fake.wait_for_message(dm, after=count - 1)
        assert answer.content == "This command only works in a server.", text


async def test_error_replies_that_repeat_the_input_fit_in_a_message(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Discord refuses a message over 2000 characters, so a reply that repeats a long
    input whole would never arrive: names are shortened where they are repeated, and
    the handlers cut whatever else is too long."""
    await start_bot(ai_settings(), extensions=[*discover_extensions(), "tests.e2e.boom_cog"])
    owner = discord_fake.owner
    prefixed = [
        (member, "!help " + "h" * 1990, "No command called `hhh", "…`."),
        (owner, "!music dj " + "r" * 1985, 'Role "rrr', '…" not found. Usage: `!music dj [role]`'),
        (owner, "!ai persona set " + "p" * 1980, "No persona `ppp", "…`. Try `/ai persona list`."),
        (member, "!echo " + "e" * 1990, "Won't echo eee", "…"),
    ]
    for n, (user, text, starts, ends) in enumerate(prefixed):
        await discord_fake.send_message(guild.text, user, text)
        reply = await discord_fake.wait_for_message(guild.text, after=n)
        content = reply.content
        assert len(content) <= 2000, text[:20]
        assert content.startswith(starts) and content.endswith(ends), content[-80:]

    slashed = [
        (member, "help", None, {"command": "h" * 6000}, "No command called `hhh", "…`."),
        (owner, "ai", ["persona", "set"], {"name": "p" * 6000}, "No persona `ppp", "list`."),
        (member, "echo", None, {"text": "e" * 6000}, "Won't echo eee", "…"),
        (member, "shout", None, {"text": "s" * 6000}, "Won't shout sss", "…"),
    ]
    for user, name, subcommand, options, starts, ends in slashed:
        interaction = await discord_fake.invoke_slash(
            guild.text, user, name, options, subcommand=subcommand
        )
        content = (await interaction.wait_response())["data"]["content"]
        assert len(content) <= 2000, name
        assert content.startswith(starts) and content.endswith(ends), content[-80:]


async def test_help_and_stats_slash(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot()
    interaction = await discord_fake.invoke_slash(guild.text, member, "help")
    help_embed = (await interaction.wait_response())["data"]["embeds"][0]
    fields = help_embed["fields"]
    listed = " ".join(field["value"] for field in fields)
    assert "`ping`" in listed and "`settings prefix`" in listed
    assert "`settings show`" in listed, "a group's fallback is listed as a command"
    assert "shutdown" not in listed, "owner commands are hidden"
    assert all(len(field["value"]) <= 1024 for field in fields), "Discord's field limit"
    for command in bot.walk_commands():  # none cut off by a full field
        if not command.hidden and not isinstance(command, commands.Group):
            assert f"`{command.qualified_name}`" in listed, command.qualified_name
    for asked, title in (("/ping", "!ping"), ("settings show", "!settings"), ("!ping", "!ping")):
        interaction = await discord_fake.invoke_slash(
            guild.text, member, "help", {"command": asked}
        )
        explained = (await interaction.wait_response())["data"]["embeds"][0]
        assert explained["title"] == title, asked
    interaction = await discord_fake.invoke_slash(guild.text, member, "stats")
    (stats,) = await discord_fake.wait_for(lambda: interaction.followups)  # deferred first
    fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
    assert fields["Memory"].endswith("MiB")
    assert int(fields["Commands run"]) >= 1
    await discord_fake.wait_for(lambda: bot.commands_run >= 2)


async def test_stats_counts_the_ai_tokens_of_its_own_server_only(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot()
    await bot.usage.record(guild.id, 7, 3)
    await bot.usage.record(guild.id + 1, 1000, 500)  # another server's use is not ours to see
    await bot.usage.record(None, 200, 100)  # nor the DMs'
    interaction = await discord_fake.invoke_slash(guild.text, member, "stats")
    (stats,) = await discord_fake.wait_for(lambda: interaction.followups)  # deferred first
    assert {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}["AI tokens today"] == "10"


def many_commands(count: int, doc_length: int) -> commands.Cog:
    """A cog of `count` prefix commands, each with a long one-line description."""

    async def run(self: commands.Cog, ctx: commands.Context) -> None:
        return None

    made = {
        f"extra{i}": commands.command(name=f"extra{i:03}", help=f"{i} " + "d" * doc_length)(run)
        for i in range(count)
    }
    return cast(commands.Cog, commands.CogMeta("Extras", (commands.Cog,), made)())


@pytest.mark.backends("sqlite")
async def test_help_listing_more_than_one_embed_holds_comes_in_several(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    """Discord refuses a message whose embeds hold over 6,000 characters: a command list
    that grows past it comes in several messages, each within the limits, listing all."""
    bot = await start_bot()
    await bot.add_cog(many_commands(60, 150))
    wanted = {
        f"`{command.qualified_name}`"
        for command in bot.walk_commands()
        if not command.hidden and not isinstance(command, commands.Group)
    }

    def listed(embeds: list[dict]) -> str:
        return " ".join(field["value"] for embed in embeds for field in embed["fields"])

    def check(embeds: list[dict]) -> None:
        for embed in embeds:
            size = len(embed.get("title", "")) + len(embed.get("description", ""))
            size += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
            assert size <= 6000 and len(embed["fields"]) <= 25
            assert all(len(f["value"]) <= 1024 for f in embed["fields"])

    def answered(messages: Sequence[FakeMessage | None]) -> list[dict]:
        embeds = [e for m in messages if m is not None for e in m.embeds]
        return embeds if all(w in listed(embeds) for w in wanted) else []

    await discord_fake.send_message(guild.text, member, "!help")
    embeds = await discord_fake.wait_for(lambda: answered(discord_fake.messages_in(guild.text)))
    check(embeds)
    assert len(embeds) == len(discord_fake.messages_in(guild.text)) > 1, "one embed a message"

    interaction = await discord_fake.invoke_slash(guild.text, member, "help")
    await interaction.wait_response()
    check(
        await discord_fake.wait_for(
            lambda: answered([interaction.original, *interaction.followups])
        )
    )
    assert interaction.ephemeral and all(m.flags & 64 for m in interaction.followups)


async def test_a_slash_command_the_bot_no_longer_has_gets_a_plain_answer(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord offers a command until the next sync (after an update removed it, or
    while its cog failed to load): using it is no bug of the bot's to report."""
    bot = await start_bot()  # synced to the dev guild with every cog
    await bot.close()
    without_music = [e for e in discover_extensions() if e != "cogs.music"]
    await start_bot(make_settings(dev_guild_id=None), extensions=without_music)
    interaction = await discord_fake.invoke_slash(guild.text, member, "skip")
    response = await interaction.wait_response()
    assert response["data"]["content"] == "That command isn't available right now."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_slash_command_discord_has_in_an_older_form_gets_a_plain_answer(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Until the next sync Discord offers a command as it was: here `/settings prefix`
    from before it took a prefix. Using it is no bug of the bot's to report."""
    await start_bot()
    [settings] = [c for c in discord_fake.commands[guild.id] if c["name"] == "settings"]
    [prefix] = [o for o in settings["options"] if o["name"] == "prefix"]
    prefix["options"] = []
    interaction = await discord_fake.invoke_slash(
        guild.text, discord_fake.owner, "settings", subcommand="prefix"
    )
    response = await interaction.wait_response()
    assert response["data"]["content"] == "That command isn't available right now."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_resumes_after_connection_drop(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    await start_bot()
    await discord_fake.drop_connection()
    await discord_fake.wait_for(lambda: discord_fake.resumes == 1, timeout=15)
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)
    assert discord_fake.identifies == 1


async def test_answers_after_discord_asks_to_reconnect_and_after_a_session_it_ends(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot(extensions=["cogs.admin"])
    readies: list[None] = []

    async def on_ready() -> None:
        readies.append(None)

    bot.add_listener(on_ready)
    await discord_fake.request_reconnect()  # op 7: RESUME
    await discord_fake.wait_for(lambda: discord_fake.resumes == 1, timeout=15)
    await discord_fake.invalidate_session()  # op 9, not resumable: IDENTIFY, a fresh READY
    await discord_fake.wait_for(lambda: readies, timeout=15)  # discord.py waits 5 s first
    assert discord_fake.identifies == 2
    assert [g.id for g in bot.guilds] == [guild.id] and not bot.guilds[0].unavailable
    await discord_fake.send_message(guild.text, member, "!ping")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "Pong!" in m.content)


@pytest.mark.slow
async def test_process_stops_cleanly_on_sigterm(
    discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "DISCORD_TOKEN": "test-token-for-subprocess",
        "DATA_DIR": str(data_dir),
        "DEV_GUILD_ID": str(guild.id),
        "FAKE_DISCORD_URL": discord_fake.url,
        "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await discord_fake.wait_for(lambda: discord_fake.identifies == 1, timeout=60)
        await discord_fake.send_message(guild.text, member, "!ping")
        await discord_fake.wait_for_message(
            guild.text, predicate=lambda m: "Pong!" in m.content, timeout=30
        )
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = await asyncio.wait_for(process.communicate(), 10)
        elapsed = time.monotonic() - started
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.decode()
    assert process.returncode == 0, log
    assert elapsed < 10
    assert "test-token-for-subprocess" not in log
    assert "test-token-for-subprocess" not in (data_dir / "logs" / "bot.log").read_text()
    with sqlite3.connect(data_dir / "bot.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_systemd_waits_for_every_step_of_the_shutdown_before_it_kills(
    start_bot: StartBot,
) -> None:
    """Each step of the shutdown has a timeout of its own. The units' TimeoutStopSec was
    30 s against ~85 s were every step to run out: systemd then killed the bot before it
    had saved the memory indexes and closed the database."""
    bot = await start_bot()
    steps = bot.shutdown_manager._handlers.values()
    worst = sum(step.timeout + CANCEL_GRACE for step in steps)
    assert worst > 30, "the case this test is about: more than the old TimeoutStopSec"
    for unit in ("gembot.service", "gembot@.service"):
        lines = (ROOT / "scripts" / unit).read_text().splitlines()
        [stop_after] = [
            line.split("=", 1)[1] for line in lines if line.startswith("TimeoutStopSec=")
        ]
        assert worst < float(stop_after), unit
