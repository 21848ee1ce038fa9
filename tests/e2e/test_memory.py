"""Long-term memory end to end: the bot remembers across days, per guild, and obeys /memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest

from bot import Bot
from cogs.memory.cog import ADDS_PER_MINUTE
from config import Settings
from tests.conftest import BASIC, StartBot, eventually
from tests.fakes.discord_server import (
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    EPHEMERAL,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMessage,
    FakeUser,
)
from tests.fakes.gemini_request import GeminiRequest
from tests.fakes.gemini_server import FakeGemini
from utils.db import open_database
from utils.memory.config import MemoryConfig
from utils.memory.embedder import SentenceEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService
from utils.pages import page_ids

DAY = 86_400
ROOT = Path(__file__).resolve().parents[2]
CHUNK = "alice: my cat is Whiskers\nassistant: ok\nalice: my PIN is 4821\nassistant: ok"
INTERACTION_WINDOW = 3.0  # seconds Discord gives an interaction's first response


async def ask(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    channel: FakeChannel,
    user: FakeUser,
    text: str,
) -> GeminiRequest:
    """Say something to the bot and return the Gemini request its reply came from."""
    before = len(gemini_fake.requests)
    mention = "" if channel.guild_id is None else f"<@{discord_fake.bot_user.id}> "
    sent = await discord_fake.send_message(channel, user, mention + text)
    await discord_fake.wait_for_message(
        channel, predicate=lambda m: m.reference == sent.id and m.content == "ok", timeout=15
    )
    [request] = gemini_fake.requests[before:]
    return request


@pytest.mark.slow
async def test_a_fact_is_remembered_days_later_in_the_same_guild_only(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    sentence_embedder: SentenceEmbedder,
) -> None:
    other = discord_fake.add_guild("Other Guild")
    other.add_member(member, permissions=BASIC)
    bot = await start_bot(ai_settings(memory_enabled=True, memory_consolidation_minutes=0))
    assert bot.memory is not None and bot.memory.embedder.name == "all-MiniLM-L6-v2"

    await ask(discord_fake, gemini_fake, guild.text, member, "my cat is named Whiskers")
    await ask(discord_fake, gemini_fake, other.text, member, "my favourite colour is green")

    memory = bot.memory

    async def indexed(scope: Scope) -> int:
        # Exchanges wait a while to be indexed together; not now. The last one is handed to
        # the indexer just after its final edit, so it may not be queued yet.
        await memory.flush()
        return await memory.count_of(scope, member.id)

    for g in (guild, other):
        await eventually(lambda g=g: indexed(Scope("guild", g.id)), equals=1)
    await bot.db.execute("UPDATE memories SET created_at = created_at - ?", (3 * DAY,))
    await discord_fake.send_message(guild.text, discord_fake.owner, "!ai reset")
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content.startswith("Forgot this channel's")
    )

    later = await ask(discord_fake, gemini_fake, guild.text, member, "what is my cat called?")
    assert "Whiskers" not in json.dumps(later.contents), "not from the (reset) history"
    assert "Things you remember" in later.system_text
    assert "(3 days ago) alice: my cat is named Whiskers" in later.system_text

    elsewhere = await ask(discord_fake, gemini_fake, other.text, member, "what is my cat called?")
    assert "Whiskers" not in elsewhere.system_text + json.dumps(elsewhere.contents)
    dm = discord_fake.open_dm(member)
    in_dm = await ask(discord_fake, gemini_fake, dm, member, "what is my cat called?")
    assert "Whiskers" not in in_dm.system_text + json.dumps(in_dm.contents)


@pytest.mark.slow
async def test_an_exchange_cut_off_by_a_shutdown_is_still_remembered(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
    sentence_embedder: SentenceEmbedder,
) -> None:
    """A stop while the bot answers: the exchange shown so far, stored as cut off by the
    restart, is remembered too (memory indexes what it was handed as it stops)."""
    settings = ai_settings(memory_enabled=True, memory_consolidation_minutes=0)
    gemini_fake.reply(["Whiskers is ", "a fine ", "name for ", "a cat."], chunk_delay=2.5)
    bot = await start_bot(settings)
    said = f"<@{discord_fake.bot_user.id}> my cat is named Whiskers"
    await discord_fake.send_message(guild.text, member, said)
    assert (await discord_fake.wait_for_message(guild.text)).content.endswith("⌛")
    await bot.close()

    bot = await start_bot(settings)
    assert bot.memory is not None
    assert await bot.memory.count_of(Scope("guild", guild.id), member.id) == 1


async def told_in(
    staff: FakeChannel,
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Start a bot with memory; the owner tells it a password in `staff`, remembered."""
    bot = await start_bot(
        ai_settings(memory_enabled=True, embedding_model="hashing", memory_consolidation_minutes=0)
    )
    owner = discord_fake.owner
    await ask(discord_fake, gemini_fake, staff, owner, "carol's appeal password is tulip77")
    memory = bot.memory
    assert memory is not None

    async def indexed() -> int:
        await memory.flush()
        return await memory.count_of(Scope("guild", guild.id), owner.id)

    await eventually(indexed, equals=1)


async def test_what_was_said_in_a_channel_is_recalled_only_where_all_who_read_it_can_read_it(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    staff = guild.add_text_channel("staff")
    view = discord.Permissions(view_channel=True).value
    guild.set_overwrite(staff, guild.id, deny=view, member=False)  # hidden from @everyone
    await told_in(staff, discord_fake, gemini_fake, guild, start_bot, ai_settings)
    owner = discord_fake.owner
    question = "what is carol's appeal password?"
    asked = await ask(discord_fake, gemini_fake, guild.text, member, question)
    assert "tulip77" not in asked.system_text
    # The owner reads #staff, but everyone reads the answer in #general: not there either.
    asked = await ask(discord_fake, gemini_fake, guild.text, owner, question)
    assert "tulip77" not in asked.system_text
    # A thread of #staff is read only by those who read #staff: there it is recalled.
    thread = guild.add_thread(staff, "appeals", owner)
    asked = await ask(discord_fake, gemini_fake, thread, owner, question)
    assert "tulip77" in asked.system_text


async def test_roles_alike_but_for_an_overwrite_are_each_asked_whether_they_read(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    # Mods and helpers read #mods; only mods read #staff. The two roles have the same
    # server permissions: only the overwrite in #staff tells them apart there.
    view = discord.Permissions(view_channel=True).value
    mods, helpers = guild.add_role("mods"), guild.add_role("helpers")  # mods first
    guild.give_role(member, mods)
    staff, room = guild.add_text_channel("staff"), guild.add_text_channel("mods")
    for channel, readers in ((staff, [mods]), (room, [mods, helpers])):
        guild.set_overwrite(channel, guild.id, deny=view, member=False)
        for role in readers:
            guild.set_overwrite(channel, role.id, allow=view, member=False)
    await told_in(staff, discord_fake, gemini_fake, guild, start_bot, ai_settings)
    question = "what is carol's appeal password?"
    asked = await ask(discord_fake, gemini_fake, room, member, question)
    assert "tulip77" not in asked.system_text  # helpers read #mods, not #staff
    guild.set_overwrite(staff, helpers.id, allow=view, member=False)
    asked = await ask(discord_fake, gemini_fake, room, member, question)
    assert "tulip77" in asked.system_text  # now all who read #mods read #staff
    dana = discord_fake.add_user("dana")
    guild.add_member(dana)
    guild.set_overwrite(room, dana.id, allow=view, member=True)  # dana reads #mods alone
    asked = await ask(discord_fake, gemini_fake, room, member, question)
    assert "tulip77" not in asked.system_text


@dataclass
class Remembered:
    """Alice told the bot her cat's name and her PIN; it holds them in one memory."""

    bot: Bot
    pin: FakeMessage  # her message with the PIN

    async def texts(self, guild: FakeGuild, member: FakeUser) -> list[str]:
        memory = self.bot.memory
        assert memory is not None
        await memory.flush()
        return [m.text for m in await memory.memories_of(Scope("guild", guild.id), member.id)]


async def cat_and_pin(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    settings: Settings,
) -> Remembered:
    bot = await start_bot(settings)
    await ask(discord_fake, gemini_fake, guild.text, member, "my cat is Whiskers")
    await ask(discord_fake, gemini_fake, guild.text, member, "my PIN is 4821")
    said = [m for m in discord_fake.messages_in(guild.text, from_bot=False) if "4821" in m.content]
    remembered = Remembered(bot, said[0])
    await eventually(lambda: remembered.texts(guild, member), equals=[CHUNK])
    return remembered


async def test_a_deleted_message_leaves_the_history_and_the_memory(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings(
        memory_enabled=True, embedding_model="hashing", memory_consolidation_minutes=0
    )
    alice = await cat_and_pin(discord_fake, gemini_fake, guild, member, start_bot, settings)
    discord_fake._delete_message(alice.pin)  # Alice deletes her message
    await eventually(lambda: alice.texts(guild, member), equals=[])  # its chunk goes, whole
    asked = await ask(discord_fake, gemini_fake, guild.text, member, "what is my PIN?")
    said = asked.system_text + json.dumps(asked.contents)
    assert "4821" not in said and "Whiskers" in said  # the history keeps the rest


async def test_an_edited_message_replaces_what_the_history_and_the_memory_held(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings(
        memory_enabled=True, embedding_model="hashing", memory_consolidation_minutes=0
    )
    alice = await cat_and_pin(discord_fake, gemini_fake, guild, member, start_bot, settings)
    mention = f"<@{discord_fake.bot_user.id}>"
    discord_fake.edit_by_author(alice.pin, f"{mention} my PIN is none of your business")
    await eventually(lambda: alice.texts(guild, member), equals=[])  # what it first said goes
    asked = await ask(discord_fake, gemini_fake, guild.text, member, "what is my PIN?")
    said = json.dumps(asked.contents)
    assert "4821" not in said and "my PIN is none of your business" in said
    assert "Whiskers" in said  # the rest of the history stays


async def test_a_message_deleted_after_the_history_let_it_go_leaves_the_memory(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """Memory lives for weeks; the history keeps AI_HISTORY_LIMIT turns per channel."""
    settings = ai_settings(
        memory_enabled=True,
        embedding_model="hashing",
        memory_consolidation_minutes=0,
        ai_history_limit=10,
        ai_user_messages_per_minute=100,
    )
    alice = await cat_and_pin(discord_fake, gemini_fake, guild, member, start_bot, settings)
    for n in range(5):  # the channel goes on talking: the PIN leaves the 10-turn history
        await ask(discord_fake, gemini_fake, guild.text, member, f"filler number {n}")
    assert not [t for t in await alice.bot.chats.turns(guild.text.id) if "4821" in t.content]
    discord_fake._delete_message(alice.pin)

    async def holding_the_pin() -> list[str]:
        return [text for text in await alice.texts(guild, member) if "4821" in text]

    await eventually(lambda: holding_the_pin(), equals=[])


async def test_deleting_any_part_of_a_split_reply_the_history_let_go_leaves_the_memory(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    settings = ai_settings(
        memory_enabled=True,
        embedding_model="hashing",
        memory_consolidation_minutes=0,
        ai_history_limit=10,
        ai_user_messages_per_minute=100,
    )
    bot = await start_bot(settings)
    memory = bot.memory
    assert memory is not None
    gemini_fake.reply("Once upon a time " + "la " * 480 + "\n\nThe end " + "la " * 480)
    await discord_fake.send_message(
        guild.text, member, f"<@{discord_fake.bot_user.id}> tell me a story"
    )

    def story() -> list[FakeMessage]:
        return [m for m in discord_fake.messages_in(guild.text) if "la la" in m.content]

    await eventually(lambda: len(story()) == 2 and "The end" in story()[1].content)

    async def holding_it() -> list[str]:
        await memory.flush()
        remembered = await memory.memories_of(Scope("guild", guild.id), member.id)
        return [m.text for m in remembered if "Once upon" in m.text]

    await eventually(holding_it)
    for n in range(5):  # the channel goes on talking: the story leaves the 10-turn history
        await ask(discord_fake, gemini_fake, guild.text, member, f"filler number {n}")
    assert not [t for t in await bot.chats.turns(guild.text.id) if "Once upon" in t.content]
    discord_fake._delete_message(story()[0])  # not the reply's latest message
    await eventually(holding_it, equals=[])


async def test_an_edited_chat_command_keeps_its_prompt_as_the_turn(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """`!chat` stores its prompt: an edit stores the new prompt, not the command line; an
    edit into another command takes the message out of the history."""
    bot = await start_bot(ai_settings())
    sent = await discord_fake.send_message(guild.text, member, "!chat hello https://example.com")
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.reference == sent.id and m.content == "ok"
    )

    async def said() -> list[str]:
        return [t.content for t in await bot.chats.turns(guild.text.id) if t.role == "user"]

    assert await said() == ["hello https://example.com"]
    discord_fake.edit_by_author(sent, "!chat goodbye https://example.com")
    await eventually(lambda: said(), equals=["goodbye https://example.com"])
    discord_fake.edit_by_author(sent, "!ping")  # no longer said to the AI: as if deleted
    await eventually(lambda: said(), equals=[])


async def slash(
    discord_fake: FakeDiscord,
    channel: FakeChannel,
    actor: FakeUser,
    subcommand: str,
    deferred: bool = True,
    **options: Any,
) -> dict:
    """Run `/memory <subcommand>` as `actor`; what it answered, and the interaction.

    Every /memory command defers first (it may wait on the model still loading), then
    fills in the deferred message; a refused check answers at once instead."""
    interaction = await discord_fake.invoke_slash(
        channel, actor, "memory", options, subcommand=subcommand
    )
    response = await interaction.wait_response()
    assert interaction.ephemeral, f"/memory {subcommand} must answer privately"
    if not deferred:
        assert response["type"] == CHANNEL_MESSAGE
        return {"interaction": interaction, **response["data"]}
    assert response["type"] == DEFERRED_CHANNEL_MESSAGE, f"/memory {subcommand} must defer"
    answer = await discord_fake.wait_for(lambda: interaction.followups, timeout=10)
    return {"interaction": interaction, "content": answer[0].content, "embeds": answer[0].embeds}


async def test_memory_commands_show_add_forget_stats(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    previous, next_ = page_ids(bot.run_id, "memory show")

    added = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    assert added["content"].startswith("I'll remember that (memory `#")
    await slash(discord_fake, guild.text, bob, "add", fact="I like metal")
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")

    shown = await slash(discord_fake, guild.text, member, "show")
    [embed] = shown["embeds"]
    assert embed["footer"]["text"].startswith("Page 1/2 · 10 memories")
    assert "Note number 8" in embed["description"] and "metal" not in embed["description"]
    page = shown["interaction"].original
    await discord_fake.click_button(page, next_, member)
    await discord_fake.wait_for(lambda: "I like jazz" in page.embeds[0]["description"], 5)
    assert page.embeds[0]["footer"]["text"].startswith("Page 2/2")
    refused = await discord_fake.click_button(page, previous, bob)
    assert (await refused.wait_response())["data"]["content"] == "These are not your memories."

    jazz_id = added["content"].split("#")[1].split("`")[0]
    gone = await slash(discord_fake, guild.text, member, "forget", target=jazz_id)
    assert gone["content"] == "Forgot 1 memory about you here."
    again = await slash(discord_fake, guild.text, member, "forget", target=f"#{jazz_id}")
    assert again["content"] == f"There is no memory `#{jazz_id}` about you here."
    not_yours = await slash(discord_fake, guild.text, member, "forget", target="all", user=bob)
    assert "Manage Server" in not_yours["content"]
    everything = await slash(discord_fake, guild.text, member, "forget", target="all")
    assert everything["content"] == "Forgot 9 memories about you here."
    empty = await slash(discord_fake, guild.text, member, "show")
    assert empty["content"] == "I don't remember anything about you here yet."

    denied = await slash(discord_fake, guild.text, member, "stats", deferred=False)
    assert "Manage Server" in denied["content"]
    stats = await slash(discord_fake, guild.text, discord_fake.owner, "stats")
    fields = {f["name"]: f["value"] for f in stats["embeds"][0]["fields"]}
    assert fields["Memories"].startswith("1\n") and fields["Embedding model"] == "`hashing`"
    assert fields["Exchanges waiting to be indexed"] == "0"  # this server's
    assert "Indexes in memory" not in fields  # the whole bot's: not a server's business
    removed = await slash(
        discord_fake, guild.text, discord_fake.owner, "forget", target="all", user=bob
    )
    assert removed["content"] == "Forgot 1 memory about bob here."


async def test_a_refused_add_uses_none_of_the_add_budget(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    for _ in range(ADDS_PER_MINUTE):
        refused = await slash(discord_fake, guild.text, member, "add", fact="x" * 501)
        assert refused["content"] == "A memory can be at most 500 characters."
        blank = await slash(discord_fake, guild.text, member, "add", fact=" \n ")
        assert blank["content"] == "There is nothing to remember in that."
    await discord_fake.send_message(guild.text, member, "!memory add " + "y" * 501)
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: m.content == "A memory can be at most 500 characters."
    )
    added = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    assert added["content"].startswith("I'll remember that (memory `#")


async def test_adding_the_same_fact_again_keeps_one_memory(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    first = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    again = await slash(discord_fake, guild.text, member, "add", fact="  I like   jazz ")
    assert again["content"] == first["content"]
    assert bot.memory is not None
    assert await bot.memory.count_of(Scope("guild", guild.id), member.id) == 1


async def test_pages_turned_after_a_forget_show_what_is_left(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    _, next_ = page_ids(bot.run_id, "memory show")
    added = [
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
        for n in range(9)
    ]
    shown = await slash(discord_fake, guild.text, member, "show")
    page = shown["interaction"].original
    assert page.embeds[0]["footer"]["text"].startswith("Page 1/2 · 9 memories")
    oldest = added[0]["content"].split("#")[1].split("`")[0]
    await slash(discord_fake, guild.text, member, "forget", target=oldest)

    await discord_fake.click_button(page, next_, member)
    footer = "Page 1/1 · 8 memories"
    await discord_fake.wait_for(lambda: page.embeds[0]["footer"]["text"].startswith(footer), 5)
    assert "Note number 8" in page.embeds[0]["description"]
    assert page.find_component(next_)["disabled"]


async def test_a_page_press_is_acknowledged_before_the_page_is_read(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a page waits on the database (busy with a big write, say): the press is
    answered within Discord's 3 s all the same, and the page follows."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
    page = (await slash(discord_fake, guild.text, member, "show"))["interaction"].original
    assert bot.memory is not None
    busy = asyncio.Event()
    count_of = bot.memory.count_of

    async def slow_count(*args: Any) -> int:
        await busy.wait()
        return await count_of(*args)

    monkeypatch.setattr(bot.memory, "count_of", slow_count)
    _, next_ = page_ids(bot.run_id, "memory show")
    pressed = await discord_fake.click_button(page, next_, member)
    assert (await pressed.wait_response(timeout=INTERACTION_WINDOW))["type"] == (
        DEFERRED_UPDATE_MESSAGE
    )
    busy.set()
    await discord_fake.wait_for(
        lambda: page.embeds[0]["footer"]["text"].startswith("Page 2/2"), timeout=5
    )


async def test_a_bug_behind_a_memory_page_button_gets_the_presser_a_short_answer(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
    page = (await slash(discord_fake, guild.text, member, "show"))["interaction"].original

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sys.modules["cogs.memory.pages"], "_line", broken)
    _, next_ = page_ids(bot.run_id, "memory show")
    pressed = await discord_fake.click_button(page, next_, member)
    [sorry] = await discord_fake.wait_for(lambda: pressed.followups, 5)
    assert sorry.content == "Something went wrong on my side; try again in a moment."
    assert sorry.flags & EPHEMERAL
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failed == ["a press of /memory show's pages failed"]


async def test_memory_buttons_come_off_after_paging_longer_than_a_token_lives(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    monkeypatch.setattr(sys.modules["cogs.memory.pages"], "PAGES_TIMEOUT", 2.0)
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
    shown = await slash(discord_fake, guild.text, member, "show")
    page = shown["interaction"].original
    _, next_ = page_ids(bot.run_id, "memory show")
    await (await discord_fake.click_button(page, next_, member)).wait_response()
    shown["interaction"].expired = True  # paged for over 15 minutes: its token no longer works

    await discord_fake.wait_for(lambda: not page.components, 5)


async def test_memory_pages_shown_before_a_restart_say_to_ask_again(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(settings)
    for n in range(9):
        await slash(discord_fake, guild.text, member, "add", fact=f"Note number {n}")
    page = (await slash(discord_fake, guild.text, member, "show"))["interaction"].original
    _, next_ = page_ids(bot.run_id, "memory show")
    await bot.close()
    await start_bot(settings)

    pressed = await discord_fake.click_button(page, next_, member)
    assert (await pressed.wait_response())["data"]["content"] == (
        "These buttons stopped working when I restarted: use `/memory show` again."
    )
    assert pressed.ephemeral


async def test_forget_with_a_member_it_cannot_find_forgets_nothing(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """A mistyped member name is not dropped (the asker's own memories would go instead),
    and the answer says which name it could not find."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    owner = discord_fake.owner
    await discord_fake.send_message(guild.text, owner, "!memory add I like green tea")
    await discord_fake.wait_for_message(
        guild.text, predicate=lambda m: "I'll remember that" in m.content
    )
    await discord_fake.send_message(guild.text, owner, "!memory forget all bobby_typo")
    refused = await discord_fake.wait_for_message(guild.text, after=1)
    assert refused.content.startswith('Member "bobby_typo" not found.')
    await discord_fake.send_message(guild.text, owner, f"!memory forget all <@{owner.id}> typo")
    refused = await discord_fake.wait_for_message(guild.text, after=2)
    assert refused.content.startswith("Too many arguments.")
    assert bot.memory is not None
    assert await bot.memory.count_of(Scope("guild", guild.id), owner.id) == 1


async def test_a_manager_can_forget_what_is_remembered_about_someone_who_left(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """Whoever left can no longer ask here themselves: Manage Server can, for them."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    gone = discord_fake.add_user("gone")  # not a member (any more)
    assert bot.memory is not None
    here = Scope("guild", guild.id)
    await bot.memory.add_fact(here, gone.id, "gone", "I live at 12 Elm Street")
    removed = await slash(
        discord_fake, guild.text, discord_fake.owner, "forget", target="all", user=gone
    )
    assert removed["content"] == "Forgot 1 memory about gone here."
    assert await bot.memory.count_of(here, gone.id) == 0


async def test_forget_explains_a_number_it_cannot_use(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    usage = "Say which memory to forget: its number from `/memory show`, or `all`."
    for target in ("²", "99999999999999999999"):
        answer = await slash(discord_fake, guild.text, member, "forget", target=target)
        assert answer["content"] == usage


async def test_prefix_show_in_a_server_goes_to_dms(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    await discord_fake.send_message(guild.text, member, "!memory add my locker code is 4711")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "remember" in m.content)
    await discord_fake.send_message(guild.text, member, "!memory show")
    notice = await discord_fake.wait_for_message(guild.text, predicate=lambda m: "DM" in m.content)
    assert notice.content == "I sent you the list in a DM."
    assert not any("4711" in json.dumps(m.embeds) for m in discord_fake.messages_in(guild.text))
    dm = discord_fake.open_dm(member)
    listing = await discord_fake.wait_for_message(dm, predicate=lambda m: m.embeds)
    assert "my locker code is 4711" in listing.embeds[0]["description"]
    assert listing.embeds[0]["title"] == f"What I remember about you in {guild.name}"


class BotProcess:
    """`python bot.py` against the local fakes, its output read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip())

    async def logged(self, text: str) -> str:
        """The first output line containing `text`, waiting for it."""

        def found() -> str | None:
            line = next((line for line in self.lines if text in line), None)
            if line is None and self._reader.done():
                raise AssertionError(f"the bot never logged {text!r}:\n" + "\n".join(self.lines))
            return line

        return await eventually(found, within=60)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._reader


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], cwd: Path) -> AsyncIterator[BotProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = BotProcess(process)
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.slow
async def test_after_a_restart_memory_is_used_as_soon_as_the_model_has_loaded(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    gemini_fake: FakeGemini,
    tmp_path: Path,
    sentence_embedder: SentenceEmbedder,
    database_url: str,
) -> None:
    """A real cold start: a fresh `python bot.py` loads the model in the background,
    acknowledges /memory at once meanwhile, and its first reply uses memory."""
    data_dir = tmp_path / "data"
    db = open_database(database_url, data_dir / "bot.db")
    await db.connect()
    before = MemoryService(
        db,
        sentence_embedder,
        directory=data_dir / "memory",
        config=MemoryConfig(consolidation_interval=0),
    )
    await before.start()
    await before.add_fact(Scope("guild", guild.id), member.id, "alice", "My cat is named Whiskers.")
    await before.close()
    await db.close()

    env = {
        "DISCORD_TOKEN": "test-token-for-subprocess",
        "DATA_DIR": str(data_dir),
        "DEV_GUILD_ID": str(guild.id),
        "GEMINI_API_KEY": "test-gemini-key",
        "GEMINI_BASE_URL": gemini_fake.url,
        "MEMORY_CONSOLIDATION_MINUTES": "0",
        "FAKE_DISCORD_URL": discord_fake.url,
        "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    async with bot_process(env, tmp_path) as bot:
        await discord_fake.wait_for(lambda: discord_fake.identifies == 1, timeout=60)
        asked = time.monotonic()
        adding = await discord_fake.invoke_slash(
            guild.text, member, "memory", {"fact": "I have a dog called Rex"}, subcommand="add"
        )
        response = await adding.wait_response(timeout=INTERACTION_WINDOW)
        [callback] = [r for r in discord_fake.requests if r.path.endswith("/callback")]
        assert response["type"] == DEFERRED_CHANNEL_MESSAGE
        assert callback.time - asked < INTERACTION_WINDOW
        [added] = await discord_fake.wait_for(lambda: adding.followups, timeout=60)
        assert added.content.startswith("I'll remember that (memory `#")

        await bot.logged("embedding model all-MiniLM-L6-v2 loaded in")
        first = await ask(discord_fake, gemini_fake, guild.text, member, "what is my cat called?")
        assert "alice: My cat is named Whiskers." in first.system_text
    assert bot.process.returncode == 0, "\n".join(bot.lines)
    assert not [line for line in bot.lines if "ERROR" in line or "Traceback" in line]
