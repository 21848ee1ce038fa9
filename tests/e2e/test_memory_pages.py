"""/memory answers and page buttons where Discord gets in the way: a command message
deleted at once, buttons that could not be taken off, a server's list shown in DMs
pressed after a restart."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from config import Settings
from tests.conftest import StartBot, eventually
from tests.e2e.test_memory import slash
from tests.fakes.discord_server import UPDATE_MESSAGE, FakeDiscord, FakeGuild, FakeUser
from utils.pages import page_ids


async def _dm_list(discord_fake: FakeDiscord, guild: FakeGuild, member: FakeUser) -> Any:
    """Nine facts remembered in `guild`, listed with `!memory show`: the list in DMs."""
    for n in range(9):
        await discord_fake.send_message(guild.text, member, f"!memory add Note number {n}")
        await discord_fake.wait_for_message(
            guild.text, after=n, predicate=lambda m: "#" in m.content
        )
    await discord_fake.send_message(guild.text, member, "!memory show")
    return await discord_fake.wait_for_message(
        discord_fake.open_dm(member), predicate=lambda m: m.embeds
    )


def _next_button(message: Any) -> str:
    return message.components[0]["components"][1]["custom_id"]


async def test_prefix_show_whose_message_is_deleted_at_once_still_says_where_the_list_went(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """Discord refuses a reply to a deleted message: the notice comes unreplied."""
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    await discord_fake.send_message(guild.text, member, "!memory add my locker code is 4711")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "remember" in m.content)
    asked = await discord_fake.send_message(guild.text, member, "!memory show")
    discord_fake._delete_message(asked)
    notice = await discord_fake.wait_for_message(guild.text, predicate=lambda m: "DM" in m.content)
    assert notice.content == "I sent you the list in a DM."


async def test_memory_buttons_left_on_by_an_outage_answer_that_they_expired(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord unreachable when the view timed out: its buttons stayed on the list, and a
    later press is answered (not "This interaction failed") and takes them off."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    monkeypatch.setattr(sys.modules["cogs.memory.pages"], "PAGES_TIMEOUT", 1.0)
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
    page = (await slash(discord_fake, guild.text, member, "show"))["interaction"].original
    failed: list[object] = []

    async def unreachable(self: object, **changes: Any) -> object:
        failed.append(changes)
        response = cast(Any, SimpleNamespace(status=503, reason="unreachable"))
        raise discord.HTTPException(response, "down")

    with monkeypatch.context() as outage:
        outage.setattr(discord.WebhookMessage, "edit", unreachable)
        await eventually(lambda: failed)
    assert page.components, "the buttons stayed on"

    _, next_ = page_ids(bot.run_id, "memory show")
    pressed = await discord_fake.click_button(page, next_, member)
    answer = await pressed.wait_response()
    assert answer["type"] == UPDATE_MESSAGE
    assert answer["data"]["content"] == "These buttons have expired; use `/memory show` again."
    await discord_fake.wait_for(lambda: not page.components, 5)


async def test_a_servers_list_in_dms_pressed_after_a_restart_says_to_ask_in_the_server(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """`/memory show` in the DMs the list is in would list the DM memories instead."""
    settings = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(settings)
    listing = await _dm_list(discord_fake, guild, member)
    await bot.close()
    await start_bot(settings)

    pressed = await discord_fake.click_button(listing, _next_button(listing), member)
    assert (await pressed.wait_response())["data"]["content"] == (
        f"These buttons stopped working when I restarted: use `/memory show` in {guild.name} again."
    )
    assert pressed.ephemeral


async def test_a_servers_list_in_dms_still_turns_its_pages(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    listing = await _dm_list(discord_fake, guild, member)
    await (await discord_fake.click_button(listing, _next_button(listing), member)).wait_response()
    await discord_fake.wait_for(
        lambda: listing.embeds[0]["footer"]["text"].startswith("Page 2/2"), 5
    )
