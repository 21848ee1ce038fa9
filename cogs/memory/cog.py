"""The `/memory` commands (the Discord layer over `bot.memory`).

People see and delete only their own memories, only in the place they ask from (a
server, or their DMs with the bot); with memory turned off, still what it kept. Lists
are private: ephemeral for slash commands, sent by DM for the prefix form in a server.
Every command acknowledges before its work.
The AI's memory tools (`cogs.memory.tools`) call the same methods as the commands, so
the same rules and limits hold.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from pathlib import PurePath
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.admin.cog import answer
from cogs.ai.log import ChatLogReader
from cogs.memory.pages import TITLE, AwayButton, MemoryPages, counted
from cogs.memory.targets import parse_target
from cogs.memory.tools import tools as memory_tools
from utils.checks import guild_permissions, readable
from utils.commands import list_subcommands
from utils.embeds import send_embeds
from utils.errors import BotError
from utils.memory.records import Memory, Recalled, Scope
from utils.memory.service import MemoryService
from utils.memory.stored import StoredMemories
from utils.reliability.rate_limiter import RateLimiter

if TYPE_CHECKING:
    from bot import Bot

Context = commands.Context["Bot"]
log = logging.getLogger(__name__)

ADDS_PER_MINUTE = 10
STUCK_PAGES = 100  # lists whose buttons outlived their view, kept in mind to answer
TURNED_OFF = "Long-term memory is turned off on this bot."
_MENTION_OR_ID = re.compile(r"<@!?[0-9]{15,20}>|[0-9]{15,20}")  # as discord.py's converters


def scope_of(guild: discord.Guild | None, user: discord.abc.User) -> Scope:
    """Where someone's memories live when they ask from `guild` (None: their DMs)."""
    return Scope.of(guild.id if guild else None, user.id)


def model_shown(model: str) -> str:
    """The embedding model as `/memory stats` names it: a local directory (`EMBEDDING_MODEL`
    may be one) by its own name, not by where the bot's host keeps it."""
    if model.startswith(("/", "~", ".")):
        return PurePath(model).name
    return model


class Person(commands.Converter[discord.abc.User], app_commands.Transformer):
    """Someone a command is about. By mention or id anyone: what is remembered about
    someone who left the server can still go. By name a member of the server it is used
    in (asked of Discord if need be), or in DMs the asker; never a same-named person of
    another server, as discord.py's user converter, which searches every user the bot
    has cached, could give. (The slash form is Discord's own user option.)"""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.user

    async def transform(
        self, interaction: discord.Interaction, value: discord.abc.User
    ) -> discord.abc.User:
        return value

    async def convert(self, ctx: Context, argument: str) -> discord.abc.User:
        if _MENTION_OR_ID.fullmatch(argument):
            return await commands.UserConverter().convert(ctx, argument)
        if ctx.guild is not None:
            return await commands.MemberConverter().convert(ctx, argument)
        if argument in (ctx.author.name, ctx.author.global_name):
            return ctx.author
        raise commands.UserNotFound(argument)


class MemoryCog(commands.Cog, name="Memory"):
    """See and manage what the bot remembers about you."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        # /memory add and the AI's remember tool share one budget per person.
        self.adds = RateLimiter(ADDS_PER_MINUTE, 60)  # by user id
        self.tools = memory_tools(self) if bot.memory is not None else []
        self.stuck_pages: deque[int] = deque(maxlen=STUCK_PAGES)
        """Messages of /memory show lists whose buttons outlived their view."""
        # What people see and delete of their own; with memory off, what it kept then.
        self.kept: MemoryService | StoredMemories = (
            bot.memory
            if bot.memory is not None
            else StoredMemories(bot.db, bot.settings.data_dir / "memory", ChatLogReader(bot.db))
        )

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AwayButton)
        self.bot.tools.register(self.tools)

    async def cog_unload(self) -> None:
        self.bot.tools.unregister(self.tools)
        self.bot.remove_dynamic_items(AwayButton)

    async def cog_before_invoke(self, ctx: Context) -> None:
        # Every command here may wait on the database, an index load or the model still
        # loading after a start: acknowledge first (slash: within Discord's 3 s; prefix:
        # a typing indicator), answer when done.
        await ctx.typing(ephemeral=True)

    @property
    def service(self) -> MemoryService:
        if self.bot.memory is None:
            raise BotError(TURNED_OFF)
        return self.bot.memory

    @commands.hybrid_group(name="memory", case_insensitive=True)
    async def memory_group(self, ctx: Context) -> None:
        """What the bot remembers about you."""
        if ctx.invoked_subcommand is None:
            await list_subcommands(ctx, self.memory_group)

    @memory_group.command(name="show")
    @app_commands.describe(page="Which page to show first")
    async def memory_show(self, ctx: Context, page: int = 1) -> None:
        """Show what the bot remembers about you here (only you can see it)."""
        service, scope = self.kept, scope_of(ctx.guild, ctx.author)
        if not await service.count_of(scope, ctx.author.id):
            # With memory off nothing new is remembered: not "yet".
            empty = " yet." if self.bot.memory is not None else f". {TURNED_OFF}"
            await ctx.send(f"I don't remember anything about you here{empty}", ephemeral=True)
            return
        # The prefix form's list goes to DMs, where "this server" would name nothing.
        where = f"in {ctx.guild.name}" if ctx.guild else "in our DMs"
        away = ctx.guild.id if ctx.interaction is None and ctx.guild is not None else None
        view = MemoryPages(
            service,
            scope,
            ctx.author.id,
            page,
            where,
            self.bot.run_id,
            stuck=self.stuck_pages.append,
            away=away,
        )
        embed = await view.embed()
        if away is not None:
            try:
                view.message = await ctx.author.send(embed=embed, view=view)
            except discord.Forbidden as error:
                raise BotError(
                    "I can't send you a DM; use the slash command `/memory show` instead."
                ) from error
            if not self.bot.owns(None):
                # Presses in DMs go to shard 0's process, which turns the pages from then
                # on: this view would take the buttons off under it when it times out.
                view.stop()
            await answer(ctx, "I sent you the list in a DM.")
            return
        view.message = await send_embeds(ctx, [embed], view=view, ephemeral=True)

    @commands.Cog.listener()
    async def on_page_press(self, interaction: discord.Interaction, run: str, command: str) -> None:
        """A press on this run's /memory show buttons whose view timed out while Discord
        was unreachable (they stayed on): say so, and take them off now."""
        if run != self.bot.run_id:
            return
        message = interaction.message
        if message is None or message.id not in self.stuck_pages:
            return  # this run's view answers its own buttons
        try:
            await interaction.response.edit_message(
                content="These buttons have expired; use `/memory show` again.", view=None
            )
        except discord.HTTPException as error:
            log.warning("could not answer the press of interaction %s: %s", interaction.id, error)
            return
        if message.id in self.stuck_pages:  # not taken off by a press at the same time
            self.stuck_pages.remove(message.id)

    @commands.Cog.listener()
    async def on_memory_away_press(
        self, interaction: discord.Interaction, run: str, guild_id: int, page: int
    ) -> None:
        """A press on a server's list shown in DMs that no view here answers: sent by
        another shard process (DMs come to shard 0's), before a restart, or buttons that
        stayed on. The page is turned here, and this run's view takes the list over."""
        message = interaction.message
        if message is None or (run == self.bot.run_id and message.id not in self.stuck_pages):
            return  # this run's view answers its own buttons
        if message.id in self.stuck_pages:
            self.stuck_pages.remove(message.id)
        view = MemoryPages(
            self.kept,
            Scope("guild", guild_id),
            interaction.user.id,
            page,
            self._away_where(guild_id, message),
            self.bot.run_id,
            stuck=self.stuck_pages.append,
            away=guild_id,
        )
        view.message = message
        try:
            await view.turn(interaction, 0)
        except Exception as error:  # as a press the view answers: logged, a short answer
            await view.on_error(interaction, error, view.next)

    def _away_where(self, guild_id: int, message: discord.Message) -> str:
        """The server a list shown in DMs is of, as its title names it."""
        guild = self.bot.get_guild(guild_id)
        if guild is not None:
            return f"in {guild.name}"
        # Another process's server: the list's own title names it.
        title = message.embeds[0].title if message.embeds else None
        return title.removeprefix(TITLE).strip() if title else "in that server"

    @memory_group.command(name="add")
    @app_commands.describe(fact="Something about you for the bot to remember here")
    async def memory_add(self, ctx: Context, *, fact: str) -> None:
        """Ask the bot to remember something about you here."""
        # Its length is checked as it is stored, on one line (`fact_text`): runs of spaces
        # and line breaks collapse, so a longer one typed may still fit.
        memory = await self.remember(ctx.guild, ctx.author, fact, None)
        await ctx.send(f"I'll remember that (memory `#{memory.id}`).", ephemeral=True)

    async def remember(
        self, guild: discord.Guild | None, user: discord.abc.User, fact: str, channel_id: int | None
    ) -> Memory:
        """Remember a fact about `user` where they asked (/memory add, the remember tool);
        only a fact that is taken counts against the budget. One said in a server
        channel's conversation (`channel_id`) is recalled only for those who may read it;
        DMs are the person's own conversation, which no channel sets apart."""
        charged = False

        def charge() -> None:  # once the fact is known to be new, while no other is told
            nonlocal charged
            if retry := self.adds.acquire(user.id):
                raise BotError(f"Slow down: try again in {math.ceil(retry)} s.")
            charged = True

        channel_id = channel_id if guild is not None else None
        try:
            return await self.service.add_fact(
                scope_of(guild, user),
                user.id,
                user.display_name,
                fact,
                channel_id=channel_id,
                charge=charge,
            )
        except BaseException:  # not taken (cancelled too): the use is given back
            if charged:
                self.adds.refund(user.id)
            raise

    # A member name that does not resolve must not be dropped, or `!memory forget all
    # bobby_typo` would forget the asker's own memories: `user` is not Optional (an
    # Optional converter's failure is passed over), so the name not found is refused as
    # such; ignore_extra=False refuses more words. A user, not a member: what is
    # remembered about someone who left the server can go too.
    @memory_group.command(name="forget", ignore_extra=False)
    @app_commands.describe(
        target="A memory number from /memory show, or `all`",
        user="Forget this person's memories instead of yours (Manage Server)",
    )
    async def memory_forget(
        self,
        ctx: Context,
        target: str,
        user: app_commands.Transform[discord.abc.User | None, Person] = None,
    ) -> None:
        """Delete one of your memories here, or all of them."""
        subject = user or ctx.author
        if subject.id != ctx.author.id and ctx.guild is None:
            raise BotError("In our DMs you can forget only your own memories.")
        if subject.id != ctx.author.id and not (
            isinstance(ctx.author, discord.Member) and ctx.author.guild_permissions.manage_guild
        ):
            raise BotError("You need the Manage Server permission to forget someone else's.")
        about = (
            "you"
            if subject.id == ctx.author.id
            else discord.utils.escape_markdown(subject.display_name)
        )
        removed = await self.forget(ctx.guild, subject, target, about)
        await ctx.send(f"Forgot {counted(removed)} about {about} here.", ephemeral=True)

    async def forget(
        self,
        guild: discord.Guild | None,
        subject: discord.abc.User,
        target: str,
        about: str,
    ) -> int:
        """Delete one of `subject`'s memories (`target` a number) or all (`all`) where they
        are asked about (/memory forget, the forget tool); how many went."""
        memory_id = parse_target(target)
        removed = await self.kept.forget(scope_of(guild, subject), subject.id, memory_id)
        if memory_id is not None and not removed:
            raise BotError(f"There is no memory `#{memory_id}` about {about} here.")
        return removed

    async def recall(
        self,
        guild: discord.Guild | None,
        user: discord.abc.User,
        here: int,
        topic: str,
        limit: int,
    ) -> list[Recalled]:
        """What is remembered where `user` asks (in channel `here`) about `topic` (the
        recall tool), from channels they may read."""
        return await self.service.recall(
            scope_of(guild, user),
            topic,
            author_id=user.id,
            author_name=user.display_name,
            readable=readable(user, here),
            limit=limit,
        )

    @memory_group.command(name="stats")
    @guild_permissions(manage_guild=True)
    async def memory_stats(self, ctx: Context) -> None:
        """Memory counts, index and model for this server (Manage Server)."""
        stats = await self.service.stats(scope_of(ctx.guild, ctx.author))
        embed = discord.Embed(title="Memory in this server", colour=discord.Colour.blurple())
        counts = " · ".join(f"{source}: {count:,}" for source, count in stats.counts.items())
        embed.add_field(name="Memories", value=f"{sum(stats.counts.values()):,}\n{counts}".strip())
        embed.add_field(
            name="Index",
            value=f"{stats.index_kind}, {stats.index_vectors:,} vectors\n"
            f"{stats.index_file_bytes / 2**20:.1f} MiB on disk",
        )
        embed.add_field(name="Embedding model", value=f"`{model_shown(stats.model)}`")
        embed.add_field(name="Exchanges waiting to be indexed", value=f"{stats.queued:,}")
        await send_embeds(ctx, [embed], ephemeral=True)
