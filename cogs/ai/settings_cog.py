"""The `/ai` commands: a channel's and a server's AI settings, its history, its tools."""

from __future__ import annotations

import asyncio
import io
from functools import partial
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.cog import AI, NOT_CONFIGURED
from cogs.ai.export import newest_that_fit, to_jsonl, to_markdown
from cogs.ai.personas import Persona, choose_persona
from cogs.ai.records import ChannelPrefs
from cogs.ai.replies import NO_PINGS, place_of
from cogs.ai.tools.audit import DONE, FAILED, UNKNOWN
from cogs.ai.tools.settings import audit_embed, families, tools_embed
from utils.checks import (
    channel_permissions,
    costly,
    dm_or_channel_permissions,
    guild_permissions,
    readable,
)
from utils.commands import list_subcommands
from utils.embeds import send_embeds
from utils.errors import BotError
from utils.text import ECHO_LIMIT, counted, split_message, truncate
from utils.tools import SWITCHABLE, Family

if TYPE_CHECKING:
    from bot import Bot

Context = commands.Context["Bot"]

MIB = 1024 * 1024
# An optional argument that is None when left out. Typed `X | None`, a prefix command takes
# a word that doesn't convert (`!ai tools search of`) as "no argument" and carries on.
_OPTIONAL = commands.parameter(default=None)


async def _reads_history(ctx: Context) -> bool:
    """A check: the asker can read this channel's past messages (in DMs the conversation
    is their own)."""
    can_read = readable(ctx.author, ctx.channel.id)
    if can_read is None or can_read(ctx.channel.id):
        return True
    raise commands.MissingPermissions(["read_message_history"])


def _kind(ctx: Context) -> str:
    """What the settings of `ctx.channel` are named in replies."""
    return "thread" if isinstance(ctx.channel, discord.Thread) else "channel"


def upload_limit(ctx: Context) -> int:
    """The largest file the bot may send here, in bytes."""
    if ctx.interaction is not None:
        return ctx.interaction.filesize_limit
    return ctx.guild.filesize_limit if ctx.guild else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


class AISettings(commands.Cog, name="AI settings"):
    """AI settings for a channel or the server: persona, prompt, model, safety, tools."""

    def __init__(self, bot: Bot, chat: AI) -> None:
        self.bot = bot
        self.chat = chat  # the chat cog: its engine, personas and tool audit
        self._switching = asyncio.Lock()  # tool families: one read-and-write at a time

    @commands.hybrid_group(name="ai", case_insensitive=True)
    async def ai_group(self, ctx: Context) -> None:
        """AI chat settings for this channel."""
        if ctx.invoked_subcommand is None:
            await list_subcommands(ctx, self.ai_group)

    @ai_group.command(name="reset")
    @dm_or_channel_permissions(manage_messages=True)
    async def ai_reset(self, ctx: Context) -> None:
        """Forget this channel's conversation (Manage Messages)."""
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        # First the mark that keeps a reply being written meanwhile from being stored, even
        # one to the channel's first message (which the reset alone would not stop).
        await self.bot.chats.start_afresh(ctx.guild and ctx.guild.id, ctx.channel.id)
        removed = await self.bot.chats.reset(ctx.channel.id)
        ours = "our" if ctx.guild is None else f"this {_kind(ctx)}'s"
        await ctx.send(f"Forgot {ours} conversation ({counted(removed, 'message')}).")

    @ai_group.command(name="autorespond")
    @channel_permissions(manage_channels=True)
    @app_commands.describe(mode="on: answer every message here; off: only when addressed")
    async def ai_autorespond(self, ctx: Context, mode: Literal["on", "off"]) -> None:
        """Answer every message in this channel, not just mentions (Manage Channels)."""
        assert ctx.guild is not None
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.bot.chats.prefs.update_channel(
            ctx.guild.id, ctx.channel.id, autorespond=int(mode == "on")
        )
        await ctx.send(f"Auto-respond is {mode} in this {_kind(ctx)}.")

    @ai_group.command(name="safety")
    @channel_permissions(manage_channels=True)
    @app_commands.describe(
        level="Block from this chance of harm up: low (strictest), medium, high, off; "
        "default: Google's"
    )
    async def ai_safety(
        self, ctx: Context, level: Literal["default", "low", "medium", "high", "off"]
    ) -> None:
        """Set how strictly Gemini's safety filter blocks replies here (Manage Channels)."""
        assert ctx.guild is not None
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.bot.chats.prefs.update_channel(
            ctx.guild.id, ctx.channel.id, safety=None if level == "default" else level
        )
        if level == "default" and isinstance(ctx.channel, discord.Thread):
            await ctx.send("This thread uses the safety filter of its channel.")
        elif level == "default":
            await ctx.send("This channel uses Google's default safety filter.")
        elif level == "off":
            await ctx.send(f"The safety filter is off in this {_kind(ctx)}.")
        else:
            await ctx.send(
                f"The safety filter here blocks content with a {level} or higher chance of harm."
            )

    @ai_group.command(name="status")
    async def ai_status(self, ctx: Context) -> None:
        """Show the model, persona, history and usage for this channel."""
        await ctx.defer(ephemeral=True)  # the counts are read from the database
        guild_id = ctx.guild.id if ctx.guild else None
        context = await self.bot.chats.context(guild_id, ctx.channel.id)
        prefs = await self._prefs(ctx)
        embed = discord.Embed(title="AI status", colour=discord.Colour.blurple())
        if self.chat.engine is None:
            embed.description = NOT_CONFIGURED
        else:
            provider = self.chat.engine.provider
            models = " → ".join(provider.models_for(context.model))
            if context.model is not None and context.model not in provider.allowed_models:
                models += f"\n(`{context.model}` is no longer allowed: the default is used)"
            embed.add_field(name="Model", value=models)
            embed.add_field(name="Circuit", value=provider.breaker.state.value)
        persona = self._persona(prefs.persona)
        embed.add_field(name="Persona", value=persona.title)
        embed.add_field(name="Custom prompt", value="yes" if prefs.system_prompt else "no")
        embed.add_field(name="Auto-respond", value="on" if prefs.autorespond else "off")
        embed.add_field(name="Safety", value=prefs.safety or "default")
        embed.add_field(
            name="History", value=counted(await self.bot.chats.count(ctx.channel.id), "message")
        )
        embed.add_field(name="Summary", value="yes" if prefs.summary else "no")
        if guild_id is not None:  # DMs are counted together: not one person's to see
            tokens = await self.bot.usage.tokens_today(guild_id)
            embed.add_field(name="Tokens today", value=f"{tokens:,}")
        await send_embeds(ctx, [embed], ephemeral=True)

    @ai_group.command(name="tools")
    @commands.guild_only()
    @app_commands.describe(
        family="Which tools to switch; leave empty to see them all", mode="on or off"
    )
    async def ai_tools(
        self,
        ctx: Context,
        family: Literal["music", "memory", "server", "search", "links"] = _OPTIONAL,
        mode: Literal["on", "off"] = _OPTIONAL,
    ) -> None:
        """Show the AI's tools here, or switch a family on or off (Manage Server)."""
        assert ctx.guild is not None and isinstance(ctx.author, discord.Member)
        if (family is None) != (mode is None):
            raise BotError("Give a family and on or off to switch it, or neither to see them.")
        enabled = self.bot.settings.ai_tools_enabled
        switch = family is not None and enabled
        if switch and not ctx.author.guild_permissions.manage_guild:
            raise commands.MissingPermissions(["manage_guild"])
        await ctx.defer(ephemeral=True)  # the read and the write may wait for others
        async with self._switching:  # another switch at once would undo this one
            on = families((await self.bot.chats.prefs.guild(ctx.guild.id)).tools)
            if switch:
                switched = Family(family)
                on = on | {switched} if mode == "on" else on - {switched}
                await self.bot.chats.prefs.set_guild_tools(
                    ctx.guild.id, frozenset(f.value for f in on if f in SWITCHABLE)
                )
        offered = frozenset(tool.family for tool in self.bot.tools)
        await send_embeds(ctx, [tools_embed(on, enabled, offered)], ephemeral=True)

    @ai_group.command(name="audit")
    @guild_permissions(manage_guild=True)
    async def ai_audit(self, ctx: Context) -> None:
        """What the AI's tools changed here lately, who asked and how it went (Manage Server)."""
        assert ctx.guild is not None
        await ctx.defer(ephemeral=True)  # the audit is read from the database
        done = await self.chat.audit.recent(ctx.guild.id, 15, ok=DONE)
        unsure = await self.chat.audit.recent(ctx.guild.id, 5, ok=UNKNOWN)
        refused = await self.chat.audit.recent(ctx.guild.id, 5, ok=FAILED)
        # Its mentions ping nobody (the bot-wide AllowedMentions), as text too.
        await send_embeds(ctx, [audit_embed(done, unsure + refused)], ephemeral=True)

    @ai_group.command(name="model")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(name="A model the bot's owner allows, or `default`")
    async def ai_model(self, ctx: Context, name: str) -> None:
        """Choose the Gemini model for this server, among those allowed (Manage Server)."""
        assert ctx.guild is not None
        if self.chat.engine is None:
            raise BotError(NOT_CONFIGURED)
        provider = self.chat.engine.provider
        if name.lower() == "default":
            await ctx.defer()  # the write may wait for another (SQLite has one writer)
            await self.bot.chats.prefs.set_guild_model(ctx.guild.id, None)
            await ctx.send(f"This server uses the default model `{provider.model}`.")
            return
        if (model := provider.allowed(name)) is None:
            allowed = ", ".join(f"`{m}`" for m in provider.allowed_models)
            raise BotError(
                f"`{truncate(name, ECHO_LIMIT)}` is not allowed here. Choose one of: "
                f"{truncate(allowed, 1500)}, or `default`."
            )
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.bot.chats.prefs.set_guild_model(ctx.guild.id, model)
        await ctx.send(f"This server now uses `{model}`.")

    @ai_model.autocomplete("name")
    async def _model_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = self.chat.engine.provider.allowed_models if self.chat.engine else ()
        return [
            app_commands.Choice(name=n, value=n)
            for n in ("default", *names)
            if current.lower() in n.lower()
        ][:25]

    @ai_group.command(name="export")
    @commands.check(_reads_history)
    @costly(2, 60)
    @app_commands.describe(format="markdown (readable) or jsonl (one JSON object per line)")
    async def ai_export(
        self, ctx: Context, format: Literal["markdown", "jsonl"] = "markdown"
    ) -> None:
        """Download this channel's conversation as a file (Read Message History)."""
        await ctx.defer(ephemeral=True)  # a long history takes a while to read and render
        turns = await self.bot.chats.turns(ctx.channel.id)
        if not turns:
            raise BotError("There is no conversation to export in this channel yet.")
        if format == "jsonl":
            render, filename = to_jsonl, f"conversation-{ctx.channel.id}.jsonl"
        else:
            name = getattr(ctx.channel, "name", None)  # a DM has none
            title = f"Conversation in #{name}" if name else f"Direct messages with {ctx.me.name}"
            render = partial(to_markdown, title=title)
            filename = f"conversation-{ctx.channel.id}.md"
        limit = upload_limit(ctx)
        data, kept = await asyncio.to_thread(newest_that_fit, turns, render, limit)
        if not kept:
            raise BotError("The newest message here is too large to send as a file.")
        said = f"{counted(kept, 'message')}."
        if kept < len(turns):
            said = (
                f"The newest {kept} of {len(turns)} messages "
                f"(a file here can be at most {limit / MIB:.0f} MiB)."
            )
        file = discord.File(io.BytesIO(data), filename=filename)
        await ctx.send(said, file=file, ephemeral=True)

    @ai_group.command(name="summarize", aliases=["summarise"])
    @costly(2, 60)
    @dm_or_channel_permissions(manage_messages=True)
    async def ai_summarize(self, ctx: Context) -> None:
        """Summarise this channel's older conversation now (Manage Messages)."""
        if self.chat.engine is None:
            raise BotError(NOT_CONFIGURED)
        await ctx.defer()
        if await self.chat.engine.summaries.now(place_of(ctx)):
            summary = (await self.bot.chats.prefs.channel(ctx.channel.id)).summary or ""
            await ctx.send(
                f"Summary updated:\n>>> {truncate(summary, 1800)}", allowed_mentions=NO_PINGS
            )
        else:
            await ctx.send("There is nothing new to summarise yet.")

    @ai_group.group(name="persona", case_insensitive=True)
    async def ai_persona(self, ctx: Context) -> None:
        """Personas: how the AI talks in this channel."""
        if ctx.invoked_subcommand is None:
            await self.ai_persona_show(ctx)

    @ai_persona.command(name="list")
    async def ai_persona_list(self, ctx: Context) -> None:
        """List the available personas."""
        lines = [f"`{p.name}`: **{p.title}**, {p.description}" for p in self.chat.personas.values()]
        for chunk in split_message("\n".join(lines)):  # all of them, over several messages
            await ctx.send(chunk, ephemeral=True)

    @ai_persona.command(name="show")
    async def ai_persona_show(self, ctx: Context) -> None:
        """Show this channel's persona."""
        await ctx.defer(ephemeral=True)  # the preferences may be read from the database
        prefs = await self._prefs(ctx)
        persona = self._persona(prefs.persona)
        await ctx.send(
            f"**{persona.title}** (`{persona.name}`): {persona.description}"
            f"{await self._prompt_note(ctx)}",
            ephemeral=True,
        )

    async def _prefs(self, ctx: Context) -> ChannelPrefs:
        """The preferences replies here follow (a thread's unset ones are its channel's)."""
        own = await self.bot.chats.prefs.channel(ctx.channel.id)
        return await self.bot.chats.prefs.followed(place_of(ctx), own)

    async def _prompt_note(self, ctx: Context) -> str:
        """What to add to a reply about the persona when a custom prompt replaces it here:
        this channel's own, or in a thread its channel's (which `/ai prompt` in the
        thread does not clear)."""
        own = await self.bot.chats.prefs.channel(ctx.channel.id)
        if own.system_prompt:
            return "\nA custom prompt set with `/ai prompt` replaces it here."
        if (await self.bot.chats.prefs.followed(place_of(ctx), own)).system_prompt:
            return (
                "\nThe custom prompt of this thread's channel replaces it: "
                "`/ai prompt` with no text in the channel clears it."
            )
        return ""

    def _persona(self, name: str | None) -> Persona:
        return choose_persona(self.chat.personas, name, self.bot.settings.ai_default_persona)

    @ai_persona.command(name="set")
    @dm_or_channel_permissions(manage_channels=True)
    @app_commands.describe(name="A persona from /ai persona list")
    async def ai_persona_set(self, ctx: Context, name: str) -> None:
        """Choose the persona for this channel (Manage Channels)."""
        key = name.lower().strip()
        if key not in self.chat.personas:
            raise BotError(f"No persona `{truncate(name, ECHO_LIMIT)}`. Try `/ai persona list`.")
        guild_id = ctx.guild.id if ctx.guild else None
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.bot.chats.prefs.update_channel(guild_id, ctx.channel.id, persona=key)
        title = self.chat.personas[key].title
        said = f"This {_kind(ctx)} now talks with **{title}**."
        if ctx.guild is None:
            said = f"I now talk as **{title}** in our conversation."
        await ctx.send(f"{said}{await self._prompt_note(ctx)}")

    @ai_persona_set.autocomplete("name")
    async def _persona_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        typed = current.lower()  # what the list shows is the title: match it as well
        return [
            app_commands.Choice(name=p.title[:100], value=p.name)
            for p in self.chat.personas.values()
            if typed in p.name or typed in p.title.lower()
        ][:25]

    @ai_group.command(name="prompt")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(
        text="The channel's system prompt; leave empty to go back to the persona"
    )
    async def ai_prompt(self, ctx: Context, *, text: str | None = None) -> None:
        """Set a custom system prompt for this channel, replacing the persona (Manage Server)."""
        text = text.strip() if text else None  # only spaces: no prompt, not a blank one
        if text is not None and len(text) > 4000:
            raise BotError("A prompt can be at most 4000 characters.")
        assert ctx.guild is not None
        await ctx.defer(ephemeral=True)  # the write may wait for another (SQLite has one writer)
        await self.bot.chats.prefs.update_channel(
            ctx.guild.id, ctx.channel.id, system_prompt=text or None
        )
        if text:
            said = f"Custom prompt set for this {_kind(ctx)}."
        elif (await self._prefs(ctx)).system_prompt:
            said = (
                "Custom prompt of this thread cleared; it still follows its channel's: "
                "`/ai prompt` with no text in the channel clears that one."
            )
        else:
            said = "Custom prompt cleared."
        await ctx.send(said, ephemeral=True)
