"""/memory answers and page buttons where Discord gets in the way: a command message
deleted at once, buttons that could not be taken off, a server's list shown in DMs
pressed after a restart."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
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


def _footer(message: Any) -> str:
    return message.embeds[0]["footer"]["text"]


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


async def test_a_servers_list_in_dms_still_turns_its_pages_after_a_restart(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """The buttons name the page they lead to: the new run turns it from the database
    (`/memory show` in the DMs the list is in would list the DM memories instead)."""
    settings = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(settings)
    listing = await _dm_list(discord_fake, guild, member)
    await bot.close()
    await start_bot(settings)

    await (await discord_fake.click_button(listing, _next_button(listing), member)).wait_response()
    await discord_fake.wait_for(lambda: _footer(listing).startswith("Page 2/2"), 5)
    assert listing.embeds[0]["title"] == f"What I remember about you in {guild.name}"
    previous = listing.components[0]["components"][0]["custom_id"]
    await (await discord_fake.click_button(listing, previous, member)).wait_response()
    await discord_fake.wait_for(lambda: _footer(listing).startswith("Page 1/2"), 5)


@pytest.mark.shards(2)
@pytest.mark.backends("postgresql")
async def test_a_servers_list_in_dms_turns_its_pages_when_another_process_runs_the_server(
    discord_fake: FakeDiscord,
    far: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two shard processes: the list of a server of shard 1 is sent by shard 1's
    process, but presses in DMs come to shard 0's, which turns the pages from then on
    (shard 1's process does not take the buttons off at its view's timeout)."""
    for shard in (0, 1):
        await start_bot(
            make_settings(
                shard_count=2,
                shard_ids=str(shard),
                discord_token=f"token-{shard}",
                data_dir=tmp_path / f"data-{shard}",
                memory_enabled=True,
                embedding_model="hashing",
            )
        )
    with monkeypatch.context() as brief:  # the view of shard 1's list times out soon
        brief.setattr(sys.modules["cogs.memory.pages"], "PAGES_TIMEOUT", 1.0)
        listing = await _dm_list(discord_fake, far, member)
    assert listing.token == "token-1"
    pressed = await discord_fake.click_button(listing, _next_button(listing), member)
    await pressed.wait_response()
    await discord_fake.wait_for(lambda: _footer(listing).startswith("Page 2/2"), 5)
    assert listing.embeds[0]["title"] == f"What I remember about you in {far.name}"
    await asyncio.sleep(1.5)  # past the timeout of shard 1's view
    previous = listing.components[0]["components"][0]["custom_id"]
    await (await discord_fake.click_button(listing, previous, member)).wait_response()
    await discord_fake.wait_for(lambda: _footer(listing).startswith("Page 1/2"), 5)


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
    await discord_fake.wait_for(lambda: _footer(listing).startswith("Page 2/2"), 5)
