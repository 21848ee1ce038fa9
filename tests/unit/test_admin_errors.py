"""The short messages command errors turn into (`cogs.admin.errors`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest
from discord.ext import commands

from cogs.admin.errors import unwrap, user_message
from utils.text import wait_words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (45.2, "46 seconds"),
        (89, "89 seconds"),
        (90, "2 minutes"),
        (600, "10 minutes"),
    ],
)
def test_a_wait_is_said_in_seconds_then_minutes_rounded_up(seconds: float, words: str) -> None:
    assert wait_words(seconds) == words


def test_discords_rate_limit_under_a_command_says_how_long_to_wait() -> None:
    """`discord.RateLimited` is no HTTPException: not a bug with a reference to report."""
    limited = discord.RateLimited(599.5)
    expected = "Discord is limiting how often that can be done; try again in 10 minutes."
    assert user_message(unwrap(commands.CommandInvokeError(limited))) == expected
    assert user_message(limited) == expected  # as a slash command's handler unwraps it


@pytest.mark.parametrize("code", [200000, 200001])  # a message's text, a thread's title
def test_a_post_the_servers_automod_blocks_says_so_not_that_the_bot_broke(code: int) -> None:
    """AutoMod's refusal (Discord's 400) was reported as the bot's bug, with a reference."""
    bad_request = cast(Any, SimpleNamespace(status=400, reason="Bad Request"))
    blocked = discord.HTTPException(bad_request, {"code": code, "message": "Blocked"})
    expected = "This server's AutoMod blocked what I was about to post."
    assert user_message(unwrap(commands.CommandInvokeError(blocked))) == expected
