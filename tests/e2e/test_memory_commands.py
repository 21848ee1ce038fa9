"""The /memory commands as people meet them: what the lists and answers say, adds that
race, and what memory kept once it is turned off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from config import Settings
from tests.conftest import StartBot
from tests.e2e.test_memory import slash
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.gemini_server import FakeGemini
from utils.memory.records import Scope


async def test_a_list_sent_to_dms_says_where_to_forget_its_memories(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """`/memory forget` in the DMs the list arrives in would forget the DM memories: the
    list of a server's memories says to use it there."""
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    await discord_fake.send_message(guild.text, member, "!memory add my locker code is 4711")
    await discord_fake.wait_for_message(guild.text, predicate=lambda m: "remember" in m.content)
    await discord_fake.send_message(guild.text, member, "!memory show")
    dm = discord_fake.open_dm(member)
    listing = await discord_fake.wait_for_message(dm, predicate=lambda m: m.embeds)
    assert listing.embeds[0]["footer"]["text"] == (
        "Page 1/1 · 1 memory · /memory forget <number> deletes one, /memory forget all "
        f"deletes them all (use them in {guild.name}, not here)"
    )


async def test_the_list_counts_its_memories_in_words(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    [embed] = (await slash(discord_fake, guild.text, member, "show"))["embeds"]
    assert embed["footer"]["text"] == (
        "Page 1/1 · 1 memory · /memory forget <number> deletes one, "
        "/memory forget all deletes them all"
    )


async def test_the_same_fact_told_twice_at_once_is_kept_once(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """A double submit (or the AI's remember beside /memory add) stores one memory."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    first, again = await asyncio.gather(
        slash(discord_fake, guild.text, member, "add", fact="I like jazz"),
        slash(discord_fake, guild.text, member, "add", fact="I like  jazz"),
    )
    assert first["content"] == again["content"]
    assert bot.memory is not None
    assert await bot.memory.count_of(Scope("guild", guild.id), member.id) == 1


async def test_a_fact_the_ai_remembered_in_dms_is_kept_once_when_told_again(
    discord_fake: FakeDiscord,
    gemini_fake: FakeGemini,
    member: FakeUser,
    start_bot: StartBot,
    ai_settings: Callable[..., Settings],
) -> None:
    """DMs are the person's own conversation: no channel sets a DM fact apart."""
    bot = await start_bot(ai_settings(memory_enabled=True, embedding_model="hashing"))
    dm = discord_fake.open_dm(member)
    gemini_fake.reply_function_calls([("remember", {"fact": "I prefer tea"})])
    gemini_fake.reply("Noted.")
    await discord_fake.send_message(dm, member, "remember that I prefer tea")
    await discord_fake.wait_for_message(dm, predicate=lambda m: m.content.startswith("Noted."))
    await discord_fake.send_message(dm, member, "!memory add I prefer tea")
    await discord_fake.wait_for_message(dm, predicate=lambda m: "I'll remember" in m.content)
    assert bot.memory is not None
    remembered = await bot.memory.memories_of(Scope("dm", member.id), member.id)
    assert [m.text for m in remembered if m.source == "user"] == ["I prefer tea"]


async def test_a_name_in_an_answer_shows_as_written(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """A manager forgets for `*star*_fan_`: the answer names them, not italics."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    fan = discord_fake.add_user("*star*_fan_")
    assert bot.memory is not None
    await bot.memory.add_fact(Scope("guild", guild.id), fan.id, fan.name, "I like stars")
    owner = discord_fake.owner
    missing = await slash(discord_fake, guild.text, owner, "forget", target="12345", user=fan)
    assert missing["content"] == r"There is no memory `#12345` about \*star\*\_fan\_ here."
    removed = await slash(discord_fake, guild.text, owner, "forget", target="all", user=fan)
    assert removed["content"] == r"Forgot 1 memory about \*star\*\_fan\_ here."


async def test_with_memory_turned_off_people_still_see_and_delete_what_it_kept(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """What was remembered while memory was on is kept, to be used when it is on again:
    its people can still see it and have it forgotten."""
    memory_on = make_settings(memory_enabled=True, embedding_model="hashing")
    bot = await start_bot(memory_on)
    assert bot.memory is not None
    here = Scope("guild", guild.id)
    home = await bot.memory.add_fact(here, member.id, member.name, "I live at 12 Elm Street")
    await bot.memory.add_fact(here, member.id, member.name, "I have a cat")
    await bot.close()  # saves the index
    index = memory_on.data_dir / "memory" / here.filename
    assert index.exists()

    await start_bot(make_settings(memory_enabled=False))
    [embed] = (await slash(discord_fake, guild.text, member, "show"))["embeds"]
    assert "12 Elm Street" in embed["description"] and "I have a cat" in embed["description"]
    one = await slash(discord_fake, guild.text, member, "forget", target=str(home.id))
    assert one["content"] == "Forgot 1 memory about you here."
    assert not index.exists()  # derived: rebuilt from what is left when memory is on again
    rest = await slash(discord_fake, guild.text, member, "forget", target="all")
    assert rest["content"] == "Forgot 1 memory about you here."
    none = await slash(discord_fake, guild.text, member, "show")
    assert none["content"] == (  # not "yet": nothing new is remembered while it is off
        "I don't remember anything about you here. Long-term memory is turned off on this bot."
    )
    added = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    assert added["content"] == "Long-term memory is turned off on this bot."

    bot = await start_bot(memory_on)
    assert bot.memory is not None
    assert await bot.memory.count_of(here, member.id) == 0
