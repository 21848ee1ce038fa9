"""The AI chat cog: when to answer, the per-channel queues, and the `/chat` and `/ai` commands
(the limits and notices are `admission`'s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.admission import BUSY, Admission
from cogs.ai.asked import edited_text, stored_text, user_input
from cogs.ai.chat import ChatEngine
from cogs.ai.directors import Direction, directed
from cogs.ai.dispatch import ChannelDispatcher
from cogs.ai.personas import SHIPPED_DIR, Persona, load_personas
from cogs.ai.replies import (
    DROPPED,
    SORRY,
    ContextSink,
    may_write,
    measured,
    place_of,
    say_dropped,
    say_why,
    show_typing,
    speaker,
    spoken,
)
from cogs.ai.streaming import FINALISE_TIMEOUT, ReplyCutOff
from cogs.ai.tools import info, server, web
from cogs.ai.tools.audit import ToolAudit
from cogs.ai.tools.settings import families
from cogs.ai.tools.toolbox import Toolbox
from cogs.ai.unfinished import finish_unfinished
from utils.checks import readable
from utils.errors import BotError
from utils.memory.stored import StoredMemories
from utils.slowmode import held_by_slowmode
from utils.tasks import log_failure
from utils.tools import Asker, Family

if TYPE_CHECKING:
    from bot import Bot
    from utils.memory.service import MemoryService
    from utils.metrics import ReplyTimer

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

NOT_CONFIGURED = "AI is not configured on this bot (the owner has not set GEMINI_API_KEY)."
DMS_OFF = "I don't chat in direct messages on this bot; mention me in a server instead."
SHUTDOWN_GRACE = 3.0  # seconds replies in progress get to finish (and be stored) at shutdown
UNFINISHED_LIMIT = 100  # replies left marked as being written that one start finalises
SAID = (discord.MessageType.default, discord.MessageType.reply)  # what people write, not system


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
        web_tools = web.tools(bot.gemini, bot.usage) if bot.gemini else []
        self.tools = [*info.tools(bot), *server.TOOLS, *web_tools]
        self._finishing: asyncio.Task[None] | None = None
        # Messages queued or being answered: each as it is now and what it says (None:
        # deleted since), so an edit or a deletion before the history holds it is not lost.
        self._pending: dict[int, tuple[Context, str] | None] = {}
        # Memories holding messages deleted or edited go with memory off too (else recalled
        # once it is on again).
        self.memories: MemoryService | StoredMemories = bot.memory or StoredMemories(
            bot.db, settings.data_dir / "memory"
        )

    async def cog_load(self) -> None:
        settings = self.bot.settings
        folder = settings.data_dir / "personas"
        self.personas = await asyncio.to_thread(
            load_personas, SHIPPED_DIR, folder, default=settings.ai_default_persona
        )
        if not self.personas:
            raise RuntimeError(f"no persona files found in {SHIPPED_DIR}")
        await self.bot.chats.prefs.load_autorespond()
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
                clock=self.bot.clock,
            )
        self.bot.tools.register(self.tools)
        self.bot.data_owners.register("ai tool audit", self.audit)
        # Before any reply starts; another shard process's replies may be live, not left.
        unfinished = await self.bot.chats.unfinished(UNFINISHED_LIMIT, self.bot.owns)
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
        """Whether a message asks the AI for a reply (before checking it is a command);
        every DM does (it is answered, or told that DMs are off)."""
        me = self.bot.user
        if message.author.bot or message.webhook_id is not None or me is None:
            return False
        if message.type not in SAID:
            return False  # "started a thread: <name>", "pinned a message", a join, a boost...
        if message.guild is None:
            return True
        if me in message.mentions or self.bot.directors.of(message.channel.id) is not None:
            return True
        if message.role_mentions and message.guild.self_role in message.role_mentions:
            return True  # the bot's own role: Discord offers it beside the bot for @ and its name
        resolved = message.reference.resolved if message.reference else None
        if isinstance(resolved, discord.Message) and resolved.author.id == me.id:
            return True
        return self.bot.chats.prefs.autoresponds(message.channel.id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self.addressed(message):
            return
        # Not a command, but answered like one: the same context and answer path as /chat.
        ctx = await self.bot.get_context(message)
        if ctx.valid:
            return  # a command, handled by the command framework
        if not self._can_answer(ctx):
            return
        say = ContextSink(ctx).send  # a notice goes where the answer would
        if self.engine is None:
            await self.admission.notice(("config", message.channel.id), say, NOT_CONFIGURED)
            return
        if message.guild is None and not self.bot.settings.ai_dm_enabled:
            await self.admission.notice(("dm", message.author.id), say, DMS_OFF)
            return
        if self.dispatcher.closed:  # stopping: a reply begun now would outlive the stop
            await self.admission.notice(("restart", message.channel.id), say, DROPPED)
            return
        text = spoken(message, ctx.me.id)
        problem = self.admission.check(text, message.author.id, message.channel.id)
        if problem is not None:
            key, notice = problem
            await self.admission.notice(key, say, notice)
            return
        if not self._submit(ctx, text):
            await self.admission.notice(("busy", message.channel.id), say, BUSY)

    def _can_answer(self, ctx: Context) -> bool:
        """Whether an answer (or a notice) to a message could be shown: else Google is not
        asked for one. A directed channel's director decides (a roleplay scene where the
        bot may not write tells its starter why it pauses)."""
        return self.bot.directors.of(ctx.channel.id) is not None or may_write(ctx)

    def _submit(self, ctx: Context, text: str, thinking: int | None = None) -> bool:
        """Queue the answer to `text` in its channel (`thinking`: the id of a deferred slash
        command's "thinking" message); False when the queue is full (then not counted)."""
        if ctx.interaction is None:
            self._pending[ctx.message.id] = (ctx, text)
        sink = ContextSink(ctx, thinking)
        answer = partial(self._answer, ctx, text, sink)
        if self.dispatcher.submit(ctx.channel.id, answer, dropped=partial(say_dropped, sink)):
            return True
        if ctx.interaction is None:
            del self._pending[ctx.message.id]
        self.admission.refund(ctx.author.id, ctx.channel.id)
        self.bot.metrics.ai_outcome("busy")
        return False

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self._forget_deleted(payload.channel_id, {payload.message_id})

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self._forget_deleted(payload.channel_id, payload.message_ids)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edited message replaces what the history holds of it; the long-term
        memories that hold what it first said are forgotten."""
        me = self.bot.user
        message = payload.message
        if me is None or message.author.bot or message.webhook_id is not None:
            # The bot's own edits (replies as they grow) are stored as they are made, and no
            # other bot's or webhook's message is ever answered: the history can't hold it.
            return
        if "content" not in payload.data:
            return
        ctx = await self.bot.get_context(message)
        if not ctx.valid:
            text = spoken(message, me.id)
        elif ctx.command is self.chat:
            text = ctx.view.read_rest().strip()  # what `!chat` took as its prompt
        else:  # it reads as another command now: what it said is gone
            await self._forget_deleted(payload.channel_id, {message.id})
            return
        if message.id in self._pending:
            self._pending[message.id] = (ctx, text)
        await self._forget_edited(payload.channel_id, message, text, me.id)

    async def _forget_edited(
        self, channel_id: int, message: discord.Message, text: str, bot_id: int
    ) -> None:
        said, data = stored_text(message, text, bot_id), self.bot.chats.data
        # A thread's first exchange keeps its note of the message the thread started from.
        edited = partial(edited_text, message, text, bot_id)
        held, first = await data.edit_message(channel_id, message.id, said, edited)
        if first is not None:
            await self.memories.unsay(channel_id, {message.id}, [first])
        elif not held:  # older than the history: memories that no longer say it go
            author = speaker(message.author)
            await self.memories.unsay(channel_id, {message.id}, still_says=(author, said))

    async def _forget_deleted(self, channel_id: int, message_ids: set[int]) -> None:
        """Messages deleted in Discord leave the conversation: its history, its summary
        and the long-term memories that hold them."""
        for message_id in message_ids & self._pending.keys():
            self._pending[message_id] = None
        turns = await self.bot.chats.data.delete_messages(channel_id, message_ids)
        await self.memories.unsay(channel_id, message_ids, turns)  # also those not held now

    # Answering

    def _deadline(self) -> float:
        """When a reply starting now must show its first words or an error."""
        return asyncio.get_running_loop().time() + self.bot.settings.ai_reply_deadline

    async def _answer(self, ctx: Context, text: str, sink: ContextSink) -> None:
        """Answer a mention, a reply to the bot, a DM or `/chat` (deferred already); a
        message in a directed channel (a roleplay scene) as its director says. A message
        edited while it waited is answered as it is now; one deleted is not."""
        if ctx.interaction is not None:
            await self._reply(ctx, text, sink)
            return
        message = ctx.message
        asked = self._pending.get(message.id, (ctx, text))
        try:
            if asked is None:
                self.admission.refund(ctx.author.id, ctx.channel.id)
            else:
                await self._reply(*asked, sink)
        finally:
            now = self._pending.pop(message.id, asked)
            # Changed while answered, before the history held it: as the listeners would.
            if now is None:
                await self._forget_deleted(message.channel.id, {message.id})
            elif now is not asked:
                await self._forget_edited(message.channel.id, now[0].message, now[1], ctx.me.id)

    async def _reply(self, ctx: Context, text: str, sink: ContextSink) -> None:
        assert self.engine is not None
        deadline = self._deadline()
        direction: Direction | None = None
        director = self.bot.directors.of(ctx.channel.id) if ctx.interaction is None else None
        if director is not None:
            answering = (direction := await directed(director, ctx, sink)) is not None
        else:  # not `/chat`: it came for a roleplay scene that ended, or was edited, meanwhile
            answering = ctx.command is not None or self.addressed(ctx.message)
        # Nor if it can't be shown now (muted, channel deleted): no unseen answer is paid for.
        if not answering or not self._can_answer(ctx):
            self.admission.refund(ctx.author.id, ctx.channel.id)  # not taken: not counted
            return
        typing: asyncio.Task[None] | None = None
        timer: ReplyTimer | None = None
        try:
            with measured(self.bot.metrics) as timer:
                self.engine.check_available()  # an open breaker refuses before any other work
                if ctx.interaction is None:  # a deferred slash command shows "thinking" instead
                    typing = asyncio.create_task(show_typing(ctx.channel, timer))
                    # Let the indicator go out now. Otherwise it waits for the first real await,
                    # after google-genai has spent a millisecond or two building the request.
                    await asyncio.sleep(0)
                try:
                    user = await user_input(ctx, text, self.bot.settings.ai_max_attachment_bytes)
                except BotError:  # files too large or not downloaded: not a message taken
                    self.admission.refund(ctx.author.id, ctx.channel.id)
                    raise
                answered = await self.engine.answer(
                    place_of(ctx),
                    ctx.author.id,
                    None if ctx.interaction else ctx.message.id,
                    user,
                    timer.watch(direction.sink if direction else sink),
                    deadline=deadline,
                    toolbox=None if direction else await self._toolbox(ctx, text),
                    system=direction and direction.system,
                    splitter=direction and direction.splitter,
                    readable=readable(ctx.author, ctx.channel.id),
                    one_message=direction is None and held_by_slowmode(ctx),
                )
                if direction is not None:
                    await direction.after(answered.text)
        except ReplyCutOff:
            pass  # the partial reply already says what happened
        except BotError as error:
            await say_why(sink, str(error))
        except discord.HTTPException as error:  # not a bug: the channel went, a permission...
            log.warning("Discord refused the reply in channel %s: %r", ctx.channel.id, error)
            await say_why(sink, SORRY)
        except Exception:
            # A bug: the asker still gets an answer, not silence (or "thinking…" for good).
            log.exception("answering in channel %s failed", ctx.channel.id)
            await say_why(sink, SORRY)
        except asyncio.CancelledError:
            if timer is None or timer.first_text is None:
                # Stopped (a restart) before a word was shown: told to ask again, as the
                # requests still waiting are, not left with silence or "thinking" for good.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FINALISE_TIMEOUT):
                        await say_dropped(sink)
            raise
        finally:
            if typing is not None:
                # Done at the first words; else (an error, a stop) the indicator ends here.
                typing.cancel()
                await asyncio.gather(typing, return_exceptions=True)

    async def _toolbox(self, ctx: Context, text: str) -> Toolbox | None:
        """The tools this reply may use, for the person who asked `text`."""
        if not self.bot.settings.ai_tools_enabled:
            return None
        guild = ctx.guild
        prefs = self.bot.chats.prefs

        async def on() -> frozenset[Family]:
            return families((await prefs.guild(guild.id if guild else None)).tools)

        message = None if ctx.interaction else ctx.message
        asker = Asker(ctx.author, ctx.channel, guild, message, text)
        timeout = self.bot.settings.ai_tool_timeout
        return Toolbox(
            self.bot.tools, asker, await on(), self.audit, families_now=on, timeout=timeout
        )

    # Commands

    @commands.hybrid_command(name="chat")
    @app_commands.describe(prompt="What to say to the AI")
    async def chat(self, ctx: Context, *, prompt: str) -> None:
        """Talk to the AI in this channel."""
        if ctx.interaction is None and not self._can_answer(ctx):
            return
        if self.engine is None:
            raise BotError(NOT_CONFIGURED)
        if place_of(ctx).guild_id is None and not self.bot.settings.ai_dm_enabled:
            raise BotError(DMS_OFF)
        if self.dispatcher.closed:
            raise BotError(DROPPED)
        problem = self.admission.check(prompt, ctx.author.id, ctx.channel.id)
        if problem is not None:
            raise BotError(problem[1])
        thinking = None
        if ctx.interaction is not None:  # Discord shows "thinking" until the reply comes
            deferred = await ctx.interaction.response.defer()
            thinking = deferred.message_id if deferred is not None else None
        if not self._submit(ctx, prompt, thinking):
            raise BotError(BUSY)
