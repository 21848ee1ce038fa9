"""The fake Discord proven with a small, real ``commands.Bot`` (not the project's bot)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser

SITECUSTOMIZE_DIR = Path(__file__).parent / "sitecustomize"


class VoteView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.votes = 0

    @discord.ui.button(label="Vote", custom_id="vote")
    async def vote(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.votes += 1
        await interaction.response.edit_message(content=f"votes: {self.votes}")


class Demo(commands.Cog):
    @commands.command()
    async def echo(self, ctx: commands.Context, *, text: str) -> None:
        await ctx.reply(text)

    @commands.hybrid_command()
    async def add(self, ctx: commands.Context, a: int, b: int) -> None:
        """Add two numbers."""
        await ctx.send(f"{a} + {b} = {a + b}")

    @commands.hybrid_command()
    async def slow(self, ctx: commands.Context) -> None:
        """Answer after thinking."""
        await ctx.defer()
        await ctx.send("done thinking")

    @commands.command()
    async def count(self, ctx: commands.Context) -> None:
        message = await ctx.send("1")
        await message.edit(content="2")
        await message.edit(content="3")

    @commands.command()
    async def upload(self, ctx: commands.Context) -> None:
        await ctx.send("here", file=discord.File(io.BytesIO(b"file bytes"), "data.txt"))

    @commands.command()
    async def size(self, ctx: commands.Context) -> None:
        data = await ctx.message.attachments[0].read()
        await ctx.send(f"{len(data)} bytes")

    @commands.command()
    async def poll(self, ctx: commands.Context) -> None:
        await ctx.send("votes: 0", view=VoteView())

    @commands.command()
    async def recap(self, ctx: commands.Context) -> None:
        async with ctx.typing():
            contents = [message.content async for message in ctx.channel.history(limit=10)]
        await ctx.message.add_reaction("\N{THUMBS UP SIGN}")
        await ctx.send(" | ".join(reversed(contents)))

    @commands.command()
    async def hook(self, ctx: commands.Context) -> None:
        webhook = await ctx.channel.create_webhook(name="rp")
        await webhook.send(
            "in character", username="Narrator", avatar_url="https://example.invalid/n.png"
        )

    @app_commands.command()
    async def note(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        """Reply, edit the reply, then follow up privately."""
        await interaction.response.send_message("saving")
        await interaction.edit_original_response(content=f"saved {file.filename}")
        data = await file.read()
        await interaction.followup.send(f"{len(data)} bytes", ephemeral=True)


def admin_group() -> app_commands.Group:
    """``/admin role give user:``, a command inside a subcommand group."""
    admin = app_commands.Group(name="admin", description="Admin tools.")
    role = app_commands.Group(name="role", description="Role tools.", parent=admin)

    @role.command(name="give", description="Give someone a role.")
    async def give(interaction: discord.Interaction, user: discord.Member) -> None:
        await interaction.response.send_message(f"gave {user.mention}", ephemeral=True)

    return admin


class TinyBot(commands.Bot):
    def __init__(self, *, members: bool = False, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.members = members
        intents.message_content = message_content
        super().__init__(
            command_prefix="!",
            intents=intents,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False),
            guild_ready_timeout=0.1,
        )

    async def setup_hook(self) -> None:
        await self.add_cog(Demo())
        self.tree.add_command(admin_group())


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


@pytest.fixture
def home(fake: FakeDiscord) -> FakeGuild:
    return fake.add_guild("Home")


@pytest.fixture
def alice(fake: FakeDiscord, home: FakeGuild) -> FakeUser:
    user = fake.add_user("alice")
    home.add_member(user)
    return user


@pytest.fixture
async def start_tiny_bot(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser
) -> AsyncIterator[Callable[..., Awaitable[TinyBot]]]:
    """Start a TinyBot (options as keyword arguments) and wait for on_ready."""
    running: list[tuple[TinyBot, asyncio.Task[None]]] = []

    async def start(**options: bool) -> TinyBot:
        bot = TinyBot(**options)
        task = asyncio.create_task(bot.start("fake-token"))
        running.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            raise AssertionError(f"bot never became ready: {task}")
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 5)


@pytest.fixture
async def bot(start_tiny_bot: Callable[..., Awaitable[TinyBot]]) -> TinyBot:
    return await start_tiny_bot()


async def test_login_ready_and_guild_create(fake: FakeDiscord, home: FakeGuild, bot: TinyBot):
    assert fake.ready.is_set()
    assert fake.identifies == 1
    paths = [(r.method, r.path) for r in fake.requests]
    assert ("GET", "/users/@me") in paths
    assert ("GET", "/oauth2/applications/@me") in paths
    guild = bot.get_guild(home.id)
    assert guild is not None and guild.name == "Home"
    assert isinstance(guild.get_channel(home.text.id), discord.TextChannel)
    assert isinstance(guild.get_channel(home.voice.id), discord.VoiceChannel)
    assert guild.me.guild_permissions.administrator
    assert bot.user is not None and bot.user.id == fake.bot_user.id


async def test_prefix_command_reply_records_allowed_mentions(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    sent = await fake.send_message(home.text, alice, "!echo hi")
    reply = await fake.wait_for_message(home.text)
    assert reply.content == "hi"
    assert reply.reference == sent.id
    assert reply.allowed_mentions == {"parse": ["users"], "replied_user": True}
    assert reply.mentions == [alice]

    role = home.members[alice.id].roles[0]
    await fake.send_message(home.text, alice, f"!echo @everyone <@&{role.id}>")
    quiet = await fake.wait_for_message(home.text, after=1)
    assert quiet.content.startswith("@everyone")
    assert (quiet.mention_everyone, quiet.mention_roles) == (False, [])
    assert fake.messages_in(home.text, from_bot=False)[:2] == [sent, reply]


async def test_sync_and_slash_command(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    with pytest.raises(AssertionError, match="never synced"):
        await fake.invoke_slash(home.text, alice, "add", {"a": 2, "b": 3})
    await bot.tree.sync()
    put = [r for r in fake.requests if r.method == "PUT"]
    assert put[0].path == f"/applications/{fake.application_id}/commands"
    assert {c["name"] for c in put[0].json} == {"add", "slow", "admin", "note"}

    interaction = await fake.invoke_slash(home.text, alice, "add", {"a": 2, "b": 3})
    response = await interaction.wait_response()
    assert response["type"] == 4
    assert response["data"]["content"] == "2 + 3 = 5"
    assert interaction.original is not None
    assert interaction.original.content == "2 + 3 = 5"
    assert not interaction.ephemeral


async def test_subcommand_group_with_user_option(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await bot.tree.sync(guild=None)
    interaction = await fake.invoke_slash(
        home.text, fake.owner, "admin", {"user": alice}, subcommand=["role", "give"]
    )
    response = await interaction.wait_response()
    assert response["data"]["content"] == f"gave <@{alice.id}>"
    assert interaction.ephemeral


async def test_deferred_followup_fills_the_thinking_message(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await bot.tree.sync()
    interaction = await fake.invoke_slash(home.text, alice, "slow")
    assert (await interaction.wait_response())["type"] == 5
    message = await fake.wait_for_message(home.text)
    assert message is interaction.original
    assert message.history == ["", "done thinking"]


async def test_button_click_edits_the_message(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await fake.send_message(home.text, alice, "!poll")
    poll = await fake.wait_for_message(home.text)
    interaction = await fake.click_button(poll, "vote", alice)
    assert (await interaction.wait_response())["type"] == 7
    assert poll.history == ["votes: 0", "votes: 1"]
    assert interaction.original is poll


async def test_edit_history(fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot):
    await fake.send_message(home.text, alice, "!count")
    message = await fake.wait_for_message(home.text)
    await fake.wait_for(lambda: len(message.edits) == 2)
    assert message.history == ["1", "2", "3"]
    assert [edit["content"] for edit in message.edits] == ["2", "3"]


async def test_file_upload_and_download(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await fake.send_message(home.text, alice, "!upload")
    message = await fake.wait_for_message(home.text)
    assert [(a.filename, a.data) for a in message.attachments] == [("data.txt", b"file bytes")]
    upload = next(r for r in fake.requests if r.files)
    assert upload.json["content"] == "here"

    await fake.send_message(
        home.text, alice, "!size", attachments=[{"filename": "x.bin", "data": b"12345"}]
    )
    reply = await fake.wait_for_message(home.text, after=1)
    assert reply.content == "5 bytes"


async def test_typing_history_and_reactions(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await fake.send_message(home.text, alice, "first")
    command = await fake.send_message(home.text, alice, "!recap")
    assert (await fake.wait_for_message(home.text)).content == "first | !recap"
    assert [channel_id for channel_id, _ in fake.typing] == [home.text.id]
    assert command.reactions == {"\N{THUMBS UP SIGN}": [fake.bot_user.id]}


async def test_webhook_message_with_overrides(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await fake.send_message(home.text, alice, "!hook")
    message = await fake.wait_for_message(home.text)
    assert (message.content, message.author.name) == ("in character", "Narrator")
    assert message.avatar_url == "https://example.invalid/n.png"
    assert message.webhook_id in fake.webhooks


async def test_interaction_edit_and_ephemeral_followup(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await bot.tree.sync()
    upload = {"filename": "notes.txt", "content_type": "text/plain", "data": b"abc"}
    interaction = await fake.invoke_slash(home.text, alice, "note", {"file": upload})
    await fake.wait_for(lambda: interaction.followups)
    assert interaction.original is not None
    assert interaction.original.history == ["saving", "saved notes.txt"]
    followup = interaction.followups[0]
    assert followup.content == "3 bytes"
    assert followup.flags & 64


async def test_members_intent_chunks_and_sees_joins(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_tiny_bot
):
    bot = await start_tiny_bot(members=True)
    guild = bot.get_guild(home.id)
    assert guild is not None and guild.get_member(alice.id) is not None
    joined = asyncio.ensure_future(bot.wait_for("member_join"))
    bob = fake.add_user("bob")
    home.add_member(bob)
    member = await asyncio.wait_for(joined, 2)
    assert member.id == bob.id


async def test_message_content_needs_the_intent(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, start_tiny_bot
):
    bot = await start_tiny_bot(message_content=False)
    received = asyncio.ensure_future(bot.wait_for("message"))
    await fake.send_message(home.text, alice, "!echo secret")
    assert (await asyncio.wait_for(received, 2)).content == ""
    mentioned = asyncio.ensure_future(bot.wait_for("message"))
    await fake.send_message(home.text, alice, f"<@{fake.bot_user.id}> hello")
    message = await asyncio.wait_for(mentioned, 2)
    assert message.content.endswith("hello")
    assert message.mentions == [guild_me(bot, home)]


def guild_me(bot: TinyBot, home: FakeGuild) -> discord.Member:
    guild = bot.get_guild(home.id)
    assert guild is not None
    return guild.me


async def test_dm_channel(fake: FakeDiscord, alice: FakeUser, bot: TinyBot):
    dm = fake.open_dm(alice)
    await fake.send_message(dm, alice, "!echo psst")
    assert (await fake.wait_for_message(dm)).content == "psst"


async def test_resume_after_dropped_connection(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    await fake.drop_connection()
    await fake.wait_for(lambda: fake.resumes == 1)
    assert fake.identifies == 1
    await fake.send_message(home.text, alice, "!echo again")
    assert (await fake.wait_for_message(home.text)).content == "again"


async def test_events_while_disconnected_are_replayed(
    fake: FakeDiscord, home: FakeGuild, alice: FakeUser, bot: TinyBot
):
    async with fake.disconnected():
        await fake.send_message(home.text, alice, "!echo missed")
        assert fake.messages_in(home.text) == []
    assert (await fake.wait_for_message(home.text)).content == "missed"
    assert (fake.resumes, fake.identifies) == (1, 1)


async def test_guild_added_live_reaches_the_bot(fake: FakeDiscord, bot: TinyBot):
    second = fake.add_guild("Second")
    await fake.wait_for(lambda: bot.get_guild(second.id))
    channel = second.add_text_channel("news")
    await fake.wait_for(lambda: bot.get_channel(channel.id))


async def test_voice_state_updates_are_recorded(fake: FakeDiscord, home: FakeGuild, bot: TinyBot):
    guild = bot.get_guild(home.id)
    assert guild is not None
    await guild.change_voice_state(channel=guild.get_channel(home.voice.id))
    updates = await fake.wait_for(lambda: fake.voice_state_updates)
    assert int(updates[0]["channel_id"]) == home.voice.id


async def test_unknown_route_is_a_json_404(fake: FakeDiscord, bot: TinyBot):
    with pytest.raises(discord.NotFound, match="Unknown route"):
        await bot.http.request(discord.http.Route("GET", "/nowhere"))


def test_sitecustomize_patches_a_subprocess():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SITECUSTOMIZE_DIR), os.environ.get("PYTHONPATH")])
        ),
        "FAKE_DISCORD_URL": "http://127.0.0.1:4567",
    }
    code = (
        "import discord.http, discord.gateway; "
        "print(discord.http.Route.BASE); print(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "http://127.0.0.1:4567/api/v10",
        "ws://127.0.0.1:4567/gateway",
    ]
