"""The fake Discord's shards, proven with a small, real ``AutoShardedBot``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import pytest
from discord.ext import commands

from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeUser


class Echo(commands.Cog):
    @commands.command()
    async def echo(self, ctx: commands.Context, *, text: str) -> None:
        await ctx.send(text)


class ShardedBot(commands.AutoShardedBot):
    def __init__(self, **options: object) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.1, **options)

    async def setup_hook(self) -> None:
        await self.add_cog(Echo())

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s between IDENTIFYs: the fake has no identify rate limit."""


StartBot = Callable[..., Awaitable[ShardedBot]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(shards=2)
    await fake.start()
    undo = fake.patch_discord()
    yield fake
    undo()
    await fake.stop()


@pytest.fixture
def guilds(fake: FakeDiscord) -> list[FakeGuild]:
    """Two guilds in turn: the first on shard 0, the second on shard 1."""
    return [fake.add_guild("Zero"), fake.add_guild("One")]


@pytest.fixture
def alice(fake: FakeDiscord, guilds: list[FakeGuild]) -> FakeUser:
    user = fake.add_user("alice")
    for guild in guilds:
        guild.add_member(user)
    return user


@pytest.fixture
async def start_bot(fake: FakeDiscord, guilds: list[FakeGuild]) -> AsyncIterator[StartBot]:
    running: list[tuple[ShardedBot, asyncio.Task[None]]] = []

    async def start(token: str = "fake-token", **options: object) -> ShardedBot:
        bot = ShardedBot(**options)
        task = asyncio.create_task(bot.start(token))
        running.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            raise AssertionError(f"bot never became ready: {task}")
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 5)


async def echo(fake: FakeDiscord, channel: FakeChannel, user: FakeUser, text: str) -> str | None:
    """Say ``!echo text``; the token of the bot that answered."""
    before = len(fake.messages_in(channel))
    await fake.send_message(channel, user, f"!echo {text}")
    reply = await fake.wait_for_message(
        channel, after=before, predicate=lambda m: m.content == text
    )
    return reply.token


def test_guild_ids_spread_over_the_shards_or_land_on_the_one_asked() -> None:
    fake = FakeDiscord(shards=3)
    made = [fake.add_guild(f"g{i}") for i in range(6)]
    assert [guild.id >> 22 for guild in made] != [made[0].id >> 22] * 6, "snowflake times vary"
    assert [fake.shard_of(guild) for guild in made] == [0, 1, 2, 0, 1, 2]
    chosen = [fake.add_guild("chosen", shard=shard) for shard in (2, 2, 0)]
    assert [(guild.id >> 22) % 3 for guild in chosen] == [2, 2, 0]
    ids = [guild.id for guild in made + chosen]
    assert ids == sorted(set(ids)), "ids stay unique and increasing"
    assert fake.add_user("later").id > ids[-1]


async def test_one_process_runs_every_shard_it_is_told_of(
    fake: FakeDiscord, guilds: list[FakeGuild], alice: FakeUser, start_bot: StartBot
) -> None:
    bot = await start_bot()  # no shard count: GET /gateway/bot says 2
    assert bot.shard_count == 2
    assert sorted(fake.sessions) == [0, 1]
    assert fake.identifies == 2
    for shard, guild in enumerate(guilds):
        session = fake.sessions[shard]
        ready = session.log[0]
        assert (ready["t"], ready["d"]["shard"]) == ("READY", [shard, 2])
        assert [g["id"] for g in ready["d"]["guilds"]] == [str(guild.id)]
        assert bot.get_guild(guild.id) is not None
        await echo(fake, guild.text, alice, f"hello {shard}")
        created = [e["d"]["content"] for e in session.log if e["t"] == "MESSAGE_CREATE"]
        assert f"!echo hello {shard}" in created
        other = fake.sessions[1 - shard]
        assert all(e["d"].get("guild_id") != str(guild.id) for e in other.log)
    dm = fake.open_dm(alice)
    await echo(fake, dm, alice, "psst")
    assert any(
        e["t"] == "MESSAGE_CREATE" and "psst" in e["d"]["content"] for e in fake.sessions[0].log
    )
    assert not any("psst" in str(e["d"]) for e in fake.sessions[1].log), "DMs go to shard 0"


async def test_a_process_of_one_shard_hears_only_that_shard(
    fake: FakeDiscord, guilds: list[FakeGuild], alice: FakeUser, start_bot: StartBot
) -> None:
    zero, one = guilds
    bot = await start_bot(shard_count=2, shard_ids=[1])
    assert list(fake.sessions) == [1]
    assert bot.get_guild(one.id) is not None and bot.get_guild(zero.id) is None
    await fake.send_message(zero.text, alice, "!echo not mine")
    await fake.send_message(fake.open_dm(alice), alice, "!echo nor this")
    await echo(fake, one.text, alice, "mine")  # answered after the two above were sent
    assert fake.messages_in(zero.text) == []
    assert fake.messages_in(fake.open_dm(alice)) == []


async def test_each_shard_drops_and_resumes_on_its_own(
    fake: FakeDiscord, guilds: list[FakeGuild], alice: FakeUser, start_bot: StartBot
) -> None:
    zero, one = guilds
    await start_bot()
    await fake.drop_connection(shard=1)
    await fake.wait_for(lambda: fake.sessions[1].resumes == 1)
    async with fake.disconnected(shard=1):
        await fake.send_message(one.text, alice, "!echo missed")
        await echo(fake, zero.text, alice, "shard 0 still answers")
        assert fake.messages_in(one.text) == []
    assert (await fake.wait_for_message(one.text)).content == "missed"
    assert (fake.sessions[0].resumes, fake.sessions[1].resumes, fake.identifies) == (0, 2, 2)


async def test_two_processes_split_the_shards(
    fake: FakeDiscord, guilds: list[FakeGuild], alice: FakeUser, start_bot: StartBot
) -> None:
    await start_bot("token-a", shard_count=2, shard_ids=[0])
    await start_bot("token-b", shard_count=2, shard_ids=[1])
    assert [fake.sessions[shard].token for shard in (0, 1)] == ["token-a", "token-b"]
    for guild, token in zip(guilds, ("token-a", "token-b"), strict=True):
        assert fake.session_of(guild) is fake.sessions[fake.shard_of(guild)]
        assert await echo(fake, guild.text, alice, "who") == token
        assert len(fake.messages_in(guild.text)) == 1, "answered once"
        posts = [r for r in fake.requests if r.path == f"/channels/{guild.text.id}/messages"]
        assert [r.token for r in posts] == [token]
