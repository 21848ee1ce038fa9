"""Following one reply or command through the JSON log: guild, channel, user, request id."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import discover_extensions
from config import Settings
from tests.conftest import BASIC, StartBot
from tests.e2e.test_ai_chat import mention, wait_reply_done
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.log import setup_logging


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON logging into a file the way `python bot.py` sets it up; yields a reader."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging(level="INFO", fmt="json", log_dir=tmp_path / "logs", secrets=["test-token"])

    def entries() -> list[dict[str, Any]]:
        for handler in root.handlers:
            handler.flush()
        text = (tmp_path / "logs" / "bot.log").read_text()
        return [json.loads(line) for line in text.splitlines()]

    yield entries
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def test_each_queued_reply_logs_with_its_own_request(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    await start_bot(ai_settings())
    gemini_fake.fail(503)  # alice's reply retries once (logged), then streams slowly
    gemini_fake.reply(["Hi ", "alice."], chunk_delay=0.2)
    gemini_fake.reply("Hi bob.")
    await discord_fake.send_message(guild.text, member, f"{mention(discord_fake)} hello")
    # bob's message waits behind alice's, in the channel's one worker task
    await discord_fake.send_message(guild.text, bob, f"{mention(discord_fake)} hello too")
    await wait_reply_done(discord_fake, guild.text, count=2)

    def replies_logged() -> list[dict[str, Any]]:  # a reply is logged after its final edit
        found = [e for e in json_log() if e["message"].startswith("AI reply ok")]
        return found if len(found) == 2 else []

    replies = await discord_fake.wait_for(replies_logged)
    entries = json_log()
    assert [e["user_id"] for e in replies] == [member.id, bob.id]
    assert all((e["guild_id"], e["channel_id"]) == (guild.id, guild.text.id) for e in replies)
    alice, bob_reply = replies
    assert alice["request_id"] != bob_reply["request_id"]
    [retry] = [e for e in entries if e["logger"] == "utils.gemini" and "retry 1" in e["message"]]
    assert retry["request_id"] == alice["request_id"] and retry["user_id"] == member.id
    assert alice["outcome"] == "ok", "extra= fields are kept"
    assert all(
        "request_id" not in e for e in entries if e["logger"] in ("utils.db", "utils.db_sqlite")
    )


async def test_prefix_and_slash_commands_log_with_their_request(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    await start_bot(extensions=[*discover_extensions(), "tests.e2e.boom_cog"])
    await discord_fake.send_message(guild.text, member, "!boom")
    apology = await discord_fake.wait_for_message(guild.text)
    interaction = await discord_fake.invoke_slash(guild.text, discord_fake.owner, "boom")
    slash_apology = (await interaction.wait_response())["data"]["content"]

    errors = [e for e in json_log() if e["level"] == "ERROR" and "unexpected error" in e["message"]]
    assert [e["user_id"] for e in errors] == [member.id, discord_fake.owner.id]
    assert all((e["guild_id"], e["channel_id"]) == (guild.id, guild.text.id) for e in errors)
    assert len({e["request_id"] for e in errors}) == 2
    assert all("ZeroDivisionError" in e["exception"] for e in errors)
    # The reference users are given finds every log line of their request.
    assert f"Reference: `{errors[0]['request_id']}`" in apology.content
    assert f"Reference: `{errors[1]['request_id']}`" in slash_apology
