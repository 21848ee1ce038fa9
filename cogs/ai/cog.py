"""The AI chat cog: when to answer, the per-channel queues, and the `/chat` and `/ai` commands
(the limits and notices are `admission`'s)."""

from __future__ import annotations

import asyncio
import io
import re
from functools import partial
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.admission import BUSY, Admission
from cogs.ai.chat import ChatEngine
from cogs.ai.dispatch import ChannelDispatcher
from cogs.ai.export import to_jsonl, to_markdown
from cogs.ai.personas import SHIPPED_DIR, Persona, choose_persona, load_personas
from cogs.ai.replies import (
    NO_PINGS,
    ContextSink,
    finish_unfinished,
    measured,
    place_of,
    show_typing,
    user_input,
)
from cogs.ai.streaming import FINALISE_TIMEOUT, ReplyCutOff
from cogs.ai.tools import info, server, web
from cogs.ai.tools.audit import ToolAudit
from cogs.ai.tools.settings import audit_embed, families, tools_embed
from cogs.ai.tools.toolbox import Toolbox
from utils.checks import costly, dm_or_guild_permissions, guild_permissions
from utils.errors import BotError
from utils.tasks import log_failure
from utils.text import truncate
from utils.tools import SWITCHABLE, Asker, Family

if TYPE_CHECKING:
    from bot import Bot

Context = commands.Context["Bot"]

NOT_CONFIGURED = "AI is not configured on this bot (the owner has not set GEMINI_API_KEY)."
SHUTDOWN_GRACE = 3.0  # seconds replies in progress get to finish (and be stored) at shutdown
UNFINISHED_LIMIT = 100  # replies left marked as being written that one start finalises
_MODEL_NAME = re.compile(r"^[\w.\-/]{1,64}$")


class AI(commands.Cog):
    """Chat with the AI: mention the bot, reply to it, DM it, or use /chat."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        settings = bot.settings
        self.dispatcher = ChannelDispatcher(
            max_concurrency=settings.ai_max_concurrency, queue_size=settings.ai_channel_queue_size
        )
        self.admission = Admission(settings, bot.metrics)
        self.personas: dict[str, Persona] = {}
        self.engine: ChatEngine | None = None
        self.audit = ToolAudit(bot.db)
        self.tools = [*info.TOOLS, *server.TOOLS, *(web.tools(bot.gemini) if bot.gemini else [])]
        self._finishing: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        settings = self.bot.settings
        self.personas = await asyncio.to_thread(
            load_personas, SHIPPED_DIR, settings.data_dir / "personas"
        )
        if not self.personas:
            raise RuntimeError(f"no persona files found in {SHIPPED_DIR}")
        await self.bot.chats.load_autorespond()
        if self.bot.gemini is not None:
            self.engine = ChatEngine(
                self.bot.gemini,
                self.bot.chats,
                self.bot.usage,
                self.personas,
                default_persona=settings.ai_default_persona,
                edit_interval=settings.ai_edit_interval,
                max_tool_rounds=settings.ai_max_tool_rounds,
                memory=self.bot.memory,
                metrics=self.bot.metrics,
            )
        self.bot.tools.register(self.tools)
        self.bot.data_owners.register("ai tool audit", self.audit)
        unfinished = await self.bot.chats.unfinished(UNFINISHED_LIMIT)  # before any reply starts
        self._finishing = asyncio.create_task(
            finish_unfinished(self.bot, unfinished), name="ai-finish"
        )
        self._finishing.add_done_callback(log_failure)
        self.bot.shutdown_manager.register(
            "ai: stop replies",
            self.stop,
            priority=10,
            timeout=SHUTDOWN_GRACE + FINALISE_TIMEOUT + 1,  # finish, else finalise, then stop
        )

    async def cog_unload(self) -> None:
        self.bot.tools.unregister(self.tools)
        self.bot.data_owners.unregister("ai tool audit")
        await self.bot.shutdown_manager.release("ai: stop replies")  # stops it, if still running

    async def stop(self) -> None:
        if self._finishing is not None:
            self._finishing.cancel()
            await asyncio.gather(self._finishing, return_exceptions=True)
        await self.dispatcher.close(grace=SHUTDOWN_GRACE)
        if self.engine is not None:
            await self.engine.close()

    # Deciding to answer

    def addressed(self, message: discord.Message) -> bool:
        """Whether a message asks the AI for a reply (before checking it is a command)."""
        me = self.bot.user
        if message.author.bot or message.webhook_id is not None or me is None:
            return False
        if message.guild is None:
            return self.bot.settings.ai_dm_enabled
        if me in message.mentions:
            return True
        resolved = message.reference.resolved if message.reference else None
        if isinstance(resolved, discord.Message) and resolved.author.id == me.id:
            return True
        return self.bot.chats.autoresponds(message.channel.id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self.addressed(message):
            return
        # Not a command, but answered like one: the same context and answer path as /chat.
        ctx = await self.bot.get_context(message)
        if ctx.valid:
            return  # a command, handled by the command framework
        if self.engine is None:
            await self.admission.notice(("config", message.channel.id), ctx.reply, NOT_CONFIGURED)
            return
        text = re.sub(rf"<@!?{ctx.me.id}>", "", message.content).strip()
        problem = self.admission.check(text, message.author.id, message.channel.id)
        if problem is not None:
            key, notice = problem
            await self.admission.notice(key, ctx.reply, notice)
            return
        if not self.dispatcher.submit(message.channel.id, partial(self._answer, ctx, text)):
            self.bot.metrics.ai_outcome("busy")
            await self.admission.notice(("busy", message.channel.id), ctx.reply, BUSY)

    # Answering

    def _deadline(self) -> float:
        """When a reply starting now must show its first words or an error."""
        return asyncio.get_running_loop().time() + self.bot.settings.ai_reply_deadline

    async def _answer(self, ctx: Context, text: str) -> None:
        """Answer a mention, a reply to the bot, a DM or `/chat` (deferred already)."""
        assert self.engine is not None
        deadline = self._deadline()
        sink = ContextSink(ctx)
        typing: asyncio.Task[None] | None = None
        try:
            with measured(self.bot.metrics) as reply:
                self.engine.check_available()  # an open breaker refuses before any other work
                if ctx.interaction is None:  # a deferred slash command shows "thinking" instead
                    typing = asyncio.create_task(show_typing(ctx.channel))
                    # Let the indicator go out now. Otherwise it waits for the first real await,
                    # after google-genai has spent a millisecond or two building the request.
                    await asyncio.sleep(0)
                user = await user_input(ctx, text, self.bot.settings.ai_max_attachment_bytes)
                await self.engine.answer(
                    place_of(ctx),
                    ctx.author.id,
                    None if ctx.interaction else ctx.message.id,
                    user,
                    reply.watch(sink),
                    deadline=deadline,
                    toolbox=await self._toolbox(ctx),
                )
        except ReplyCutOff:
            pass  # the partial reply already says what happened
        except BotError as error:
            await sink.send(str(error))
        finally:
            if typing is not None:
                # Long sent by now; only an indicator stuck on a dead Discord is cut short.
                typing.cancel()
                await asyncio.gather(typing, return_exceptions=True)

    async def _toolbox(self, ctx: Context) -> Toolbox | None:
        """The tools this reply may use, for the person who asked."""
        if not self.bot.settings.ai_tools_enabled:
            return None
        guild = ctx.guild
        on = families((await self.bot.chats.guild(guild.id if guild else None)).tools)
        message = None if ctx.interaction else ctx.message
        asker = Asker(ctx.author, ctx.channel, guild, message)
        timeout = self.bot.settings.ai_tool_timeout
        return Toolbox(self.bot.tools, asker, on, self.audit, timeout=timeout)

    # Commands

    @commands.hybrid_command(name="chat")
    @app_commands.describe(prompt="What to say to the AI")
    async def chat(self, ctx: Context, *, prompt: str) -> None:
        """Talk to the AI in this channel."""
        if self.engine is None:
            raise BotError(NOT_CONFIGURED)
        problem = self.admission.check(prompt, ctx.author.id, ctx.channel.id)
        if problem is not None:
            raise BotError(problem[1])
        await ctx.defer()  # the slash form: Discord shows "thinking" until the reply
        if not self.dispatcher.submit(ctx.channel.id, partial(self._answer, ctx, prompt)):
            self.bot.metrics.ai_outcome("busy")
            raise BotError(BUSY)

    @commands.hybrid_group(name="ai")
    async def ai_group(self, ctx: Context) -> None:
        """AI chat settings for this channel."""
        if ctx.invoked_subcommand is None:
            names = ", ".join(f"`{c.name}`" for c in self.ai_group.commands)
            await ctx.send(f"Subcommands: {names}", ephemeral=True)

    @ai_group.command(name="reset")
    @dm_or_guild_permissions(manage_messages=True)
    async def ai_reset(self, ctx: Context) -> None:
        """Forget this channel's conversation (Manage Messages)."""
        removed = await self.bot.chats.reset(ctx.channel.id)
        await ctx.send(f"Forgot this channel's conversation ({removed} messages).")

    @ai_group.command(name="autorespond")
    @guild_permissions(manage_channels=True)
    @app_commands.describe(mode="on: answer every message here; off: only when addressed")
    async def ai_autorespond(self, ctx: Context, mode: Literal["on", "off"]) -> None:
        """Answer every message in this channel, not just mentions (Manage Channels)."""
        assert ctx.guild is not None
        await self.bot.chats.update_channel(
            ctx.guild.id, ctx.channel.id, autorespond=int(mode == "on")
        )
        await ctx.send(f"Auto-respond is {mode} in this channel.")

    @ai_group.command(name="safety")
    @guild_permissions(manage_channels=True)
    @app_commands.describe(
        level="Block from this chance of harm up: low (strictest), medium, high, off; "
        "default: Google's"
    )
    async def ai_safety(
        self, ctx: Context, level: Literal["default", "low", "medium", "high", "off"]
    ) -> None:
        """Set how strictly Gemini's safety filter blocks replies here (Manage Channels)."""
        assert ctx.guild is not None
        await self.bot.chats.update_channel(
            ctx.guild.id, ctx.channel.id, safety=None if level == "default" else level
        )
        if level == "default":
            await ctx.send("This channel uses Google's default safety filter.")
        elif level == "off":
            await ctx.send("The safety filter is off in this channel.")
        else:
            await ctx.send(
                f"The safety filter here blocks content with a {level} or higher chance of harm."
            )

    @ai_group.command(name="status")
    async def ai_status(self, ctx: Context) -> None:
        """Show the model, persona, history and usage for this channel."""
        guild_id = ctx.guild.id if ctx.guild else None
        context = await self.bot.chats.context(guild_id, ctx.channel.id)
        prefs = context.prefs
        embed = discord.Embed(title="AI status", colour=discord.Colour.blurple())
        if self.engine is None:
            embed.description = NOT_CONFIGURED
        else:
            provider = self.engine.provider
            embed.add_field(name="Model", value=" → ".join(provider.models_for(context.model)))
            embed.add_field(name="Circuit", value=provider.breaker.state.value)
        persona = self._persona(prefs.persona)
        embed.add_field(name="Persona", value=persona.title)
        embed.add_field(name="Custom prompt", value="yes" if prefs.system_prompt else "no")
        embed.add_field(name="Auto-respond", value="on" if prefs.autorespond else "off")
        embed.add_field(name="Safety", value=prefs.safety or "default")
        embed.add_field(
            name="History", value=f"{await self.bot.chats.count(ctx.channel.id)} messages"
        )
        embed.add_field(name="Summary", value="yes" if prefs.summary else "no")
        tokens = await self.bot.usage.tokens_today(guild_id or 0)
        embed.add_field(name="Tokens today", value=f"{tokens:,}")
        await ctx.send(embed=embed, ephemeral=True)

    @ai_group.command(name="tools")
    @commands.guild_only()
    @app_commands.describe(
        family="Which tools to switch; leave empty to see them all", mode="on or off"
    )
    async def ai_tools(
        self,
        ctx: Context,
        family: Literal["music", "memory", "server", "search", "links"] | None = None,
        mode: Literal["on", "off"] | None = None,
    ) -> None:
        """Show the AI's tools here, or switch a family on or off (Manage Server)."""
        assert ctx.guild is not None and isinstance(ctx.author, discord.Member)
        enabled = self.bot.settings.ai_tools_enabled
        on = families((await self.bot.chats.guild(ctx.guild.id)).tools)
        if family is not None and mode is not None and enabled:
            if not ctx.author.guild_permissions.manage_guild:
                raise commands.MissingPermissions(["manage_guild"])
            switched = Family(family)
            on = on | {switched} if mode == "on" else on - {switched}
            await self.bot.chats.set_guild_tools(
                ctx.guild.id, frozenset(f.value for f in on if f in SWITCHABLE)
            )
        await ctx.send(embed=tools_embed(on, enabled), ephemeral=True)

    @ai_group.command(name="audit")
    @guild_permissions(manage_guild=True)
    async def ai_audit(self, ctx: Context) -> None:
        """What the AI's tools changed here lately, who asked and how it went (Manage Server)."""
        assert ctx.guild is not None
        actions = await self.audit.recent(ctx.guild.id, 15)
        await ctx.send(embed=audit_embed(actions), ephemeral=True, allowed_mentions=NO_PINGS)

    @ai_group.command(name="model")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(name="A Gemini model name, or `default`")
    async def ai_model(self, ctx: Context, name: str) -> None:
        """Choose the Gemini model for this server (Manage Server)."""
        assert ctx.guild is not None
        if name.lower() == "default":
            await self.bot.chats.set_guild_model(ctx.guild.id, None)
            await ctx.send(
                f"This server uses the default model `{self.bot.settings.gemini_model}`."
            )
            return
        if not _MODEL_NAME.match(name):
            raise BotError("That doesn't look like a model name (e.g. `gemini-2.5-flash`).")
        await self.bot.chats.set_guild_model(ctx.guild.id, name)
        await ctx.send(f"This server now uses `{name}`.")

    @ai_group.command(name="export")
    @costly(2, 60)
    @app_commands.describe(format="markdown (readable) or jsonl (one JSON object per line)")
    async def ai_export(
        self, ctx: Context, format: Literal["markdown", "jsonl"] = "markdown"
    ) -> None:
        """Download this channel's conversation as a file."""
        turns = await self.bot.chats.turns(ctx.channel.id)
        if not turns:
            raise BotError("There is no conversation to export in this channel yet.")
        name = getattr(ctx.channel, "name", None) or "dm"
        if format == "jsonl":
            data, filename = to_jsonl(turns), f"conversation-{ctx.channel.id}.jsonl"
        else:
            data = to_markdown(turns, f"Conversation in #{name}")
            filename = f"conversation-{ctx.channel.id}.md"
        file = discord.File(io.BytesIO(data.encode()), filename=filename)
        await ctx.send(f"{len(turns)} messages.", file=file, ephemeral=True)

    @ai_group.command(name="summarize", aliases=["summarise"])
    @costly(2, 60)
    @dm_or_guild_permissions(manage_messages=True)
    async def ai_summarize(self, ctx: Context) -> None:
        """Summarise this channel's older conversation now (Manage Messages)."""
        if self.engine is None:
            raise BotError(NOT_CONFIGURED)
        await ctx.defer()
        guild_id = ctx.guild.id if ctx.guild else None
        if await self.engine.summarise(guild_id, ctx.channel.id, everything=True):
            summary = (await self.bot.chats.channel(ctx.channel.id)).summary or ""
            await ctx.send(
                f"Summary updated:\n>>> {truncate(summary, 1800)}", allowed_mentions=NO_PINGS
            )
        else:
            await ctx.send("There is nothing new to summarise yet.")

    @ai_group.group(name="persona")
    async def ai_persona(self, ctx: Context) -> None:
        """Personas: how the AI talks in this channel."""
        if ctx.invoked_subcommand is None:
            await self.ai_persona_show(ctx)

    @ai_persona.command(name="list")
    async def ai_persona_list(self, ctx: Context) -> None:
        """List the available personas."""
        lines = [f"`{p.name}`: **{p.title}**, {p.description}" for p in self.personas.values()]
        await ctx.send(truncate("\n".join(lines), 2000), ephemeral=True)

    @ai_persona.command(name="show")
    async def ai_persona_show(self, ctx: Context) -> None:
        """Show this channel's persona."""
        prefs = await self.bot.chats.channel(ctx.channel.id)
        persona = self._persona(prefs.persona)
        note = "\nA custom prompt set with `/ai prompt` replaces it." if prefs.system_prompt else ""
        await ctx.send(
            f"**{persona.title}** (`{persona.name}`): {persona.description}{note}", ephemeral=True
        )

    def _persona(self, name: str | None) -> Persona:
        return choose_persona(self.personas, name, self.bot.settings.ai_default_persona)

    @ai_persona.command(name="set")
    @dm_or_guild_permissions(manage_channels=True)
    @app_commands.describe(name="A persona from /ai persona list")
    async def ai_persona_set(self, ctx: Context, name: str) -> None:
        """Choose the persona for this channel (Manage Channels)."""
        key = name.lower().strip()
        if key not in self.personas:
            raise BotError(f"No persona `{name}`. Try `/ai persona list`.")
        guild_id = ctx.guild.id if ctx.guild else None
        await self.bot.chats.update_channel(guild_id, ctx.channel.id, persona=key)
        await ctx.send(f"This channel now talks with **{self.personas[key].title}**.")

    @ai_persona_set.autocomplete("name")
    async def _persona_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=p.title[:100], value=p.name)
            for p in self.personas.values()
            if current.lower() in p.name
        ][:25]

    @ai_group.command(name="prompt")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(
        text="The channel's system prompt; leave empty to go back to the persona"
    )
    async def ai_prompt(self, ctx: Context, *, text: str | None = None) -> None:
        """Set a custom system prompt for this channel, replacing the persona (Manage Server)."""
        if text is not None and len(text) > 4000:
            raise BotError("A prompt can be at most 4000 characters.")
        assert ctx.guild is not None
        await self.bot.chats.update_channel(
            ctx.guild.id, ctx.channel.id, system_prompt=text or None
        )
        await ctx.send(
            "Custom prompt set for this channel." if text else "Custom prompt cleared.",
            ephemeral=True,
        )
