"""The fake's administration routes, driven by a real discord.py client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import pytest

from tests.conftest import eventually
from tests.fakes.discord_models import PRIVATE_THREAD, PUBLIC_THREAD
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser

MANAGE_ROLES = discord.Permissions(manage_roles=True).value
BASIC = discord.Permissions(view_channel=True, send_messages=True).value

StartClient = Callable[..., Awaitable[discord.Client]]


@pytest.fixture
def home(discord_fake: FakeDiscord) -> FakeGuild:
    return discord_fake.add_guild("Home")


@pytest.fixture
def alice(discord_fake: FakeDiscord, home: FakeGuild) -> FakeUser:
    user = discord_fake.add_user("alice")
    home.add_member(user)
    return user


@pytest.fixture
async def start_client(discord_fake: FakeDiscord) -> AsyncIterator[StartClient]:
    """Start a plain discord.py client (``members``: the privileged intent) until ready."""
    running: list[tuple[discord.Client, asyncio.Task[None]]] = []

    async def start(*, members: bool = False) -> discord.Client:
        intents = discord.Intents.default()
        intents.members = members
        client = discord.Client(intents=intents)
        task = asyncio.create_task(client.start("fake-token"))
        running.append((client, task))
        ready = asyncio.create_task(client.wait_until_ready())
        await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            raise AssertionError(f"client never became ready: {task}")
        return client

    yield start
    for client, task in running:
        await client.close()
        await asyncio.wait_for(task, 5)


async def connected(start_client: StartClient, home: FakeGuild, **options: bool) -> discord.Guild:
    client = await start_client(**options)
    guild = client.get_guild(home.id)
    assert guild is not None
    return guild


def reasons(fake: FakeDiscord, method: str, path: str) -> list[str | None]:
    return [r.reason for r in fake.requests if (r.method, r.path) == (method, path)]


async def test_create_text_voice_and_category_channels(
    discord_fake: FakeDiscord, home: FakeGuild, start_client: StartClient
):
    guild = await connected(start_client, home)
    category = await guild.create_category("Projects")
    text = await guild.create_text_channel(
        "Game Night", topic="Fridays", slowmode_delay=5, category=category, reason="asked by alice"
    )
    voice = await guild.create_voice_channel("Hangout")

    assert (text.name, text.topic, text.slowmode_delay) == ("game-night", "Fridays", 5)
    assert text.category_id == category.id
    await eventually(lambda: text.id in [c.id for c in guild.text_channels])
    await eventually(lambda: voice.id in [c.id for c in guild.voice_channels])
    cached = guild.get_channel(text.id)
    assert isinstance(cached, discord.TextChannel) and cached.category == category
    stored = home.channels[text.id]
    assert (stored.name, stored.topic, stored.parent_id) == ("game-night", "Fridays", category.id)
    assert home.channels[voice.id].name == "Hangout"
    created = reasons(discord_fake, "POST", f"/guilds/{home.id}/channels")
    assert created == [None, "asked by alice", None]


async def test_rename_and_slowmode_reach_the_cached_channel(
    discord_fake: FakeDiscord, home: FakeGuild, start_client: StartClient
):
    guild = await connected(start_client, home)
    channel = guild.get_channel(home.text.id)
    assert isinstance(channel, discord.TextChannel)
    await channel.edit(name="News Desk", slowmode_delay=30, topic="today", reason="tidy up")

    await eventually(lambda: (channel.name, channel.slowmode_delay), equals=("news-desk", 30))
    assert channel.topic == "today"
    assert (home.text.name, home.text.rate_limit_per_user) == ("news-desk", 30)
    assert reasons(discord_fake, "PATCH", f"/channels/{home.text.id}") == ["tidy up"]
    with pytest.raises(discord.HTTPException) as invalid:
        await channel.edit(slowmode_delay=21_601)
    assert (invalid.value.status, invalid.value.code) == (400, 50035)
    assert home.text.rate_limit_per_user == 30


async def test_threads_are_created_and_work_as_channels(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    guild = await connected(start_client, home)
    channel = guild.get_channel(home.text.id)
    assert isinstance(channel, discord.TextChannel)

    thread = await channel.create_thread(
        name="Plans", type=discord.ChannelType.public_thread, reason="a topic"
    )
    await eventually(lambda: guild.get_thread(thread.id))
    assert (home.threads[thread.id].type, home.threads[thread.id].parent_id) == (
        PUBLIC_THREAD,
        channel.id,
    )
    sent = await thread.send("first!")
    assert [m.content for m in discord_fake.messages_in(thread.id)] == ["first!"]
    assert sent.channel == guild.get_thread(thread.id)
    reply = await discord_fake.send_message(home.threads[thread.id], alice, "me too")
    assert (await thread.fetch_message(reply.id)).content == "me too"

    starter = await channel.send("let's talk")
    from_message = await starter.create_thread(name="Talk")
    assert from_message.id == starter.id
    assert home.threads[starter.id].type == PUBLIC_THREAD
    with pytest.raises(discord.HTTPException) as twice:
        await starter.create_thread(name="Again")
    assert twice.value.code == 160004

    private = await channel.create_thread(name="Quiet")  # discord.py's default type
    assert private.type is discord.ChannelType.private_thread
    assert home.threads[private.id].type == PRIVATE_THREAD
    await private.edit(name="Quieter", slowmode_delay=10)
    await eventually(lambda: getattr(guild.get_thread(private.id), "name", None), equals="Quieter")
    assert reasons(discord_fake, "POST", f"/channels/{channel.id}/threads")[0] == "a topic"


async def test_pin_and_unpin(discord_fake: FakeDiscord, home: FakeGuild, start_client: StartClient):
    client = await start_client()
    guild = client.get_guild(home.id)
    assert guild is not None
    channel = guild.get_channel(home.text.id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("remember this")
    cached = await eventually(lambda: discord.utils.get(client.cached_messages, id=message.id))
    pins_update = asyncio.ensure_future(client.wait_for("guild_channel_pins_update", timeout=5))

    await message.pin(reason="important")
    stored = discord_fake.messages[message.id]
    assert stored.pinned
    updated_channel, last_pin = await pins_update
    assert (updated_channel.id, last_pin) == (channel.id, stored.pinned_at)
    await eventually(lambda: cached.pinned)
    [pinned] = [m async for m in channel.pins()]
    assert (pinned.id, pinned.pinned, pinned.pinned_at) == (message.id, True, stored.pinned_at)
    notice = discord_fake.messages_in(channel.id, from_bot=False)[-1]
    assert (notice.type, notice.reference) == (6, message.id)  # "TestBot pinned a message"
    assert reasons(discord_fake, "PUT", f"/channels/{channel.id}/messages/pins/{message.id}") == [
        "important"
    ]

    await message.unpin()
    assert not stored.pinned
    await eventually(lambda: not cached.pinned)
    assert [m async for m in channel.pins()] == []


async def test_create_role_goes_just_above_everyone(
    discord_fake: FakeDiscord, home: FakeGuild, start_client: StartClient
):
    guild = await connected(start_client, home)
    bot_role = home.members[discord_fake.bot_user.id].roles[0]
    before = bot_role.position
    role = await guild.create_role(
        name="Helpers",
        permissions=discord.Permissions(send_messages=True, pin_messages=True),
        colour=discord.Colour(0x3498DB),
        hoist=True,
        mentionable=True,
        reason="for the helpers",
    )

    assert (role.name, role.position, role.colour.value, role.hoist, role.mentionable) == (
        "Helpers",
        1,
        0x3498DB,
        True,
        True,
    )
    stored = home.roles[role.id]
    assert (stored.position, bot_role.position) == (1, before + 1)
    await eventually(lambda: guild.get_role(role.id))
    await eventually(lambda: guild.me.top_role.position, equals=before + 1)
    assert guild.me.top_role > role
    assert reasons(discord_fake, "POST", f"/guilds/{home.id}/roles") == ["for the helpers"]


async def test_give_and_take_roles(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    helpers = home.add_role("Helpers", BASIC, position=1)
    guild = await connected(start_client, home, members=True)
    member = guild.get_member(alice.id)
    assert member is not None
    role = guild.get_role(helpers.id)
    assert role is not None

    await member.add_roles(role, reason="earned it")
    assert helpers in home.members[alice.id].roles
    await eventually(lambda: role in member.roles)
    await member.remove_roles(role)
    assert helpers not in home.members[alice.id].roles
    await eventually(lambda: role not in member.roles)
    path = f"/guilds/{home.id}/members/{alice.id}/roles/{helpers.id}"
    assert reasons(discord_fake, "PUT", path) == ["earned it"]
    assert reasons(discord_fake, "DELETE", path) == [None]


async def test_the_bot_sees_its_own_roles_without_the_members_intent(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    helpers = home.add_role("Helpers", BASIC, position=1)
    guild = await connected(start_client, home)
    role = guild.get_role(helpers.id)
    assert role is not None
    await guild.me.add_roles(role)
    await eventually(lambda: role in guild.me.roles)

    someone = await guild.fetch_member(alice.id)
    await someone.add_roles(role)  # allowed; no GUILD_MEMBER_UPDATE without the intent
    assert helpers in home.members[alice.id].roles
    assert guild.get_member(alice.id) is None


async def test_refusals_without_permissions(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    helpers = home.add_role("Helpers", BASIC, position=1)
    guild = await connected(start_client, home)
    channel = guild.get_channel(home.text.id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("hello")
    manage_messages = discord.Permissions(manage_messages=True).value
    member = await guild.fetch_member(alice.id)
    home.add_member(discord_fake.bot_user, permissions=BASIC | manage_messages)

    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "create channel": lambda: guild.create_text_channel("nope"),
        "rename": lambda: channel.edit(name="nope"),
        "thread": lambda: channel.create_thread(
            name="nope", type=discord.ChannelType.public_thread
        ),
        "pin (manage_messages is not enough)": message.pin,
        "create role": lambda: guild.create_role(name="nope"),
        "give role": lambda: member.add_roles(discord.Object(helpers.id)),
    }
    for what, attempt in attempts.items():
        with pytest.raises(discord.Forbidden) as refused:
            await attempt()
        assert (refused.value.status, refused.value.code) == (403, 50013), what
    assert list(home.channels) == [home.text.id, home.voice.id]
    assert home.text.name == "general" and not home.threads
    assert not discord_fake.messages[message.id].pinned
    assert helpers not in home.members[alice.id].roles


async def test_role_refusals_follow_the_hierarchy(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    home.add_member(discord_fake.bot_user, permissions=BASIC | MANAGE_ROLES)
    bot_role = home.members[discord_fake.bot_user.id].roles[0]
    mods = home.add_role("Mods", BASIC)  # on top, above the bot's role
    below = home.add_role("Below", BASIC, position=1)
    guild = await connected(start_client, home)
    alice_member = await guild.fetch_member(alice.id)

    for role_id in (mods.id, bot_role.id):  # above the bot; its own (managed) role
        with pytest.raises(discord.Forbidden):
            await alice_member.add_roles(discord.Object(role_id))
    with pytest.raises(discord.Forbidden):  # may not grant what it lacks
        await guild.create_role(name="boss", permissions=discord.Permissions(administrator=True))
    await alice_member.add_roles(discord.Object(below.id))
    assert home.members[alice.id].roles[1:] == [below]
    role = await guild.create_role(name="ok", permissions=discord.Permissions(send_messages=True))
    assert role.position == 1


async def test_unknown_ids_are_not_found(
    discord_fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_client: StartClient
):
    client = await start_client()
    http = client.http
    guild = client.get_guild(home.id)
    assert guild is not None
    channel = guild.get_channel(home.text.id)
    assert isinstance(channel, discord.TextChannel)
    member = await guild.fetch_member(alice.id)
    stranger = discord_fake.add_user("stranger")  # not a member of the guild
    role = home.add_role("Helpers", BASIC, position=1)
    attempts: dict[int, Callable[[], Awaitable[object]]] = {
        10003: lambda: http.edit_channel(12345, name="x"),
        10008: channel.get_partial_message(12345).pin,
        10011: lambda: member.add_roles(discord.Object(12345)),
        10007: lambda: http.add_role(guild.id, stranger.id, role.id),
    }
    for code, attempt in attempts.items():
        with pytest.raises(discord.NotFound) as missing:
            await attempt()
        assert missing.value.code == code
    with pytest.raises(discord.HTTPException) as invalid:
        await member.add_roles(guild.default_role)
    assert (invalid.value.status, invalid.value.code) == (400, 50028)
