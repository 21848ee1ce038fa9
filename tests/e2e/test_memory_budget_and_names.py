"""The /memory commands' budget and the people they name: what costs a use of the add
budget, and who a name given to `/memory forget` can be."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from cogs.memory.cog import ADDS_PER_MINUTE
from config import Settings
from tests.conftest import BASIC, StartBot
from tests.e2e.test_memory import slash
from tests.fakes.discord_server import DEFERRED_CHANNEL_MESSAGE, FakeDiscord, FakeGuild, FakeUser
from utils.memory.records import Scope


async def test_telling_a_fact_again_uses_none_of_the_add_budget(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """A fact told before is not taken again: it costs no use of the add budget."""
    await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    first = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    for _ in range(ADDS_PER_MINUTE):
        again = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
        assert again["content"] == first["content"]
    added = await slash(discord_fake, guild.text, member, "add", fact="I like tea")
    assert added["content"].startswith("I'll remember that (memory `#")


class WatchedLock(asyncio.Lock):
    """A lock that counts who asked for it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def acquire(self) -> bool:
        self.asked += 1
        return await super().acquire()


async def test_the_same_new_fact_told_twice_at_once_uses_one_use_of_the_budget(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A double click (or the command and the remember tool at once): one memory is
    stored, and only it costs a use."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    assert bot.memory is not None
    embedder = bot.memory.runtime.embedder
    encode, embedding, go_on = embedder.encode, threading.Event(), threading.Event()

    def held(texts: list[str]) -> object:
        embedding.set()
        go_on.wait(10)
        return encode(texts)

    monkeypatch.setattr(embedder, "encode", held)
    telling = bot.memory._telling = WatchedLock()
    first, second = [
        await discord_fake.invoke_slash(
            guild.text, member, "memory", {"fact": "I like jazz"}, subcommand="add"
        )
        for _ in range(2)
    ]
    await discord_fake.wait_for(lambda: embedding.is_set() and telling.asked == 2, timeout=10)
    go_on.set()
    answers = []
    for interaction in (first, second):
        response = await interaction.wait_response()
        assert response["type"] == DEFERRED_CHANNEL_MESSAGE
        [answer] = await discord_fake.wait_for(lambda i=interaction: i.followups, timeout=10)
        answers.append(answer.content)
    assert answers[0] == answers[1]
    assert answers[0].startswith("I'll remember that (memory `#")
    for n in range(ADDS_PER_MINUTE - 1):
        added = await slash(discord_fake, guild.text, member, "add", fact=f"Note {n}")
        assert added["content"].startswith("I'll remember that (memory `#")


async def test_a_fact_padded_with_spaces_is_measured_as_it_is_stored(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """Runs of spaces and line breaks are stored as one space: a fact that fits so is
    taken, whether typed as a slash or a prefix command."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    fact = "I like jazz" + " " * 300 + "x" * 300
    added = await slash(discord_fake, guild.text, member, "add", fact=fact)
    assert added["content"].startswith("I'll remember that (memory `#")
    await discord_fake.send_message(
        guild.text, member, "!memory add I like tea" + "\n" * 300 + "y" * 300
    )
    answer = await discord_fake.wait_for_message(guild.text, predicate=lambda m: "#" in m.content)
    assert answer.content.startswith("I'll remember that (memory `#")
    assert bot.memory is not None
    stored = await bot.memory.memories_of(Scope("guild", guild.id), member.id)
    assert sorted(m.text for m in stored) == ["I like jazz " + "x" * 300, "I like tea " + "y" * 300]


async def test_an_add_that_fails_uses_none_of_the_add_budget(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fact the bot could not take (its model broken, say) costs no use either."""
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    assert bot.memory is not None
    embedder = bot.memory.runtime.embedder

    def broken(texts: object) -> None:
        raise RuntimeError("the model is broken")

    monkeypatch.setattr(embedder, "encode", broken)
    for n in range(ADDS_PER_MINUTE):
        failed = await slash(discord_fake, guild.text, member, "add", fact=f"Note {n}")
        assert failed["content"].startswith("Sorry, something went wrong")
    monkeypatch.undo()
    added = await slash(discord_fake, guild.text, member, "add", fact="I like jazz")
    assert added["content"].startswith("I'll remember that (memory `#")


async def test_forget_by_name_finds_the_member_of_this_server(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    """A name is looked up among this server's members (asking Discord: without the
    members intent the bot has few of them at hand), never among people of other
    servers."""
    elsewhere = discord_fake.add_guild("Elsewhere")
    stranger = discord_fake.add_user("bob")
    elsewhere.add_member(stranger, permissions=BASIC)
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    carol = discord_fake.add_user("carol")
    elsewhere.add_member(carol, permissions=BASIC)
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    assert bot.memory is not None
    here = Scope("guild", guild.id)
    await bot.memory.add_fact(here, bob.id, "bob", "I live at 12 Elm Street")
    await bot.memory.add_fact(here, carol.id, "carol", "I was here once")

    owner = discord_fake.owner
    await discord_fake.send_message(guild.text, owner, "!memory forget all bob")
    done = await discord_fake.wait_for_message(guild.text)
    assert done.content == "Forgot 1 memory about bob here."
    assert await bot.memory.count_of(here, bob.id) == 0
    await discord_fake.send_message(guild.text, owner, "!memory forget all carol")
    refused = await discord_fake.wait_for_message(guild.text, after=1)
    assert refused.content.startswith('Member "carol" not found.')
    assert await bot.memory.count_of(here, carol.id) == 1


async def test_in_dms_a_name_is_only_the_askers_own(
    discord_fake: FakeDiscord,
    guild: FakeGuild,
    member: FakeUser,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    bob = discord_fake.add_user("bob")
    guild.add_member(bob, permissions=BASIC)
    bot = await start_bot(make_settings(memory_enabled=True, embedding_model="hashing"))
    assert bot.memory is not None
    await bot.memory.add_fact(Scope("dm", member.id), member.id, "alice", "I like tea")
    dm = discord_fake.open_dm(member)
    await discord_fake.send_message(dm, member, "!memory forget all bob")
    refused = await discord_fake.wait_for_message(dm)
    assert refused.content.startswith('User "bob" not found.')
    await discord_fake.send_message(dm, member, f"!memory forget all <@{bob.id}>")
    refused = await discord_fake.wait_for_message(dm, after=1)
    assert refused.content == "In our DMs you can forget only your own memories."
    await discord_fake.send_message(dm, member, "!memory forget all alice")
    done = await discord_fake.wait_for_message(dm, after=2)
    assert done.content == "Forgot 1 memory about you here."
