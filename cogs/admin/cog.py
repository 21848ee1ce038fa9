"""Admin commands and the global error handler (the Discord-facing layer)."""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import discord
import psutil
from discord import app_commands
from discord.ext import commands

from cogs.admin.errors import mark_unanswered, unwrap, user_message
from config import prefix_problem
from utils.checks import guild_permissions
from utils.commands import runs_here, unquoted
from utils.embeds import send_embeds
from utils.errors import BotError
from utils.log import current_request
from utils.pages import PageButton
from utils.text import DISCORD_LIMIT, ECHO_LIMIT, truncate

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

PAGES_GONE = "These buttons stopped working when I restarted: use `/{command}` again."


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
    parts = [f"{value}{unit}" for value, unit in units if value]
    return " ".join(parts) or "0s"


def format_latency(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "n/a"


FIELD_LIMIT = 1024  # characters of an embed field's value
EMBED_LIMIT = 6000  # characters of a message's embeds together: Discord refuses more
EMBED_FIELDS = 25  # fields of one embed
TITLE_LIMIT = 256  # characters of an embed's title
DESCRIPTION_LIMIT = 4096  # characters of an embed's description


def _listed_name(command: commands.Command[Any, ..., Any]) -> str | None:
    """How `/help` lists a command: groups by their fallback (`settings show`), if any."""
    if command.hidden:
        return None
    if isinstance(command, commands.Group):
        fallback = getattr(command, "fallback", None)  # hybrid groups only
        return f"{command.qualified_name} {fallback}" if fallback else None
    return command.qualified_name


def _command_lines(found: Iterable[commands.Command[Any, ..., Any]]) -> list[str]:
    """How `/help` lists commands: one line each, by name."""
    return [
        f"`{name}` {command.short_doc}"
        for command in sorted(found, key=lambda c: c.qualified_name)
        if (name := _listed_name(command))
    ]


def _fields(lines: list[str]) -> Iterator[str]:
    """`lines` as embed field values, whole lines in each, none over FIELD_LIMIT."""
    field = ""
    for line in lines:
        line = truncate(line, FIELD_LIMIT)
        if field and len(field) + 1 + len(line) > FIELD_LIMIT:
            yield field
            field = ""
        field = f"{field}\n{line}" if field else line
    if field:
        yield field


def help_embeds(intro: str, sections: list[tuple[str, list[str]]]) -> list[discord.Embed]:
    """The command list: `intro`, then each section's lines in fields, over as many
    embeds (one a message) as Discord's limits take; a section split over several
    fields or embeds keeps its name on the first."""
    embeds = [discord.Embed(title="Commands", description=intro)]
    for name, lines in sections:
        for part, value in enumerate(_fields(lines)):
            field_name = name if part == 0 else "\u200b"
            embed = embeds[-1]
            full = len(embed.fields) == EMBED_FIELDS
            if full or len(embed) + len(field_name) + len(value) > EMBED_LIMIT:
                embed = discord.Embed(title="Commands (continued)")
                embeds.append(embed)
            embed.add_field(name=field_name, value=value, inline=False)
    return embeds


async def answer(ctx: Context, content: str) -> None:
    """Answer a prefix command as a reply to its message, or plainly where Discord would
    refuse the reply: without Read Message History, or once the message is deleted."""
    if not ctx.bot_permissions.read_message_history:
        await ctx.send(content)
        return
    reference = ctx.message.to_reference(fail_if_not_exists=False)
    await ctx.send(content, reference=reference, mention_author=False)


def validate_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if problem := prefix_problem(prefix):
        raise BotError(f"A prefix {problem}.")
    return prefix


class Admin(commands.Cog):
    """Bot status, settings and owner maintenance."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._process = psutil.Process()

    async def cog_load(self) -> None:
        self._previous_tree_error = self.bot.tree.on_error
        self.bot.tree.on_error = self.on_app_command_error
        self.bot.add_dynamic_items(PageButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(PageButton)
        self.bot.tree.on_error = self._previous_tree_error

    # Everyone

    @commands.hybrid_command()
    async def ping(self, ctx: Context) -> None:
        """Show the gateway latency and a REST round trip."""
        started = time.perf_counter()
        message = await ctx.send("Pinging…")
        rest = time.perf_counter() - started
        # The latency of the shard this server is on (DMs: shard 0), named when there
        # are several: what an operator needs to tell a slow shard from a slow bot.
        shard_id = ctx.guild.shard_id if ctx.guild else 0
        shard = self.bot.get_shard(shard_id)
        latency = shard.latency if shard is not None else self.bot.latency
        content = f"Pong! Gateway {format_latency(latency)} · REST {format_latency(rest)}"
        if (self.bot.shard_count or 1) > 1:
            content += f" · shard {shard_id}"
        await message.edit(content=content)

    @commands.hybrid_command()
    async def stats(self, ctx: Context) -> None:
        """Show uptime, guilds, latency, memory, commands run, AI tokens and circuit states.

        The AI tokens are this server's, of today."""
        await ctx.defer()  # the tokens are read from the database
        embed = discord.Embed(title="Bot stats", colour=discord.Colour.blurple())
        embed.add_field(
            name="Uptime", value=format_duration(time.monotonic() - self.bot.started_at)
        )
        embed.add_field(name="Guilds", value=str(len(self.bot.guilds)))
        embed.add_field(name="Latency", value=format_latency(self.bot.latency))
        rss = self._process.memory_info().rss
        embed.add_field(name="Memory", value=f"{rss / 2**20:.0f} MiB")
        embed.add_field(name="Commands run", value=str(self.bot.commands_run))
        if ctx.guild is not None:  # this server's: other servers' use is theirs
            tokens = await self.bot.usage.tokens_today(ctx.guild.id)
            embed.add_field(name="AI tokens today", value=f"{tokens:,}")
        embed.add_field(
            name="Circuits",
            value="\n".join(f"{b.name}: {b.state}" for b in self.bot.breakers) or "none yet",
            inline=False,
        )
        if self.bot.failed_extensions:
            embed.add_field(
                name="Cogs that failed to load",
                value=", ".join(self.bot.failed_extensions),
                inline=False,
            )
        if (shard_ids := self.bot.settings.shard_ids) is not None:  # other processes run the rest
            embed.set_footer(
                text=f"This process runs {len(shard_ids)} of {self.bot.shard_count} shards: "
                "the guilds, latency, memory and commands run are its own"
            )
        await send_embeds(ctx, [embed])

    @commands.hybrid_command(name="help")
    @app_commands.describe(command="A command to explain, such as `ai persona set`")
    async def help_command(self, ctx: Context, *, command: str | None = None) -> None:
        """List the commands, or explain one."""
        prefix = self.bot.guild_settings.prefix(ctx.guild.id if ctx.guild else None)
        if asked := unquoted(command or ""):
            # As typed first: a prefix may start a command's name (prefix `s`, `help stats`);
            # then without the prefix, in any letter case as it runs (`G!ping`), or a `/`.
            typed = asked[: len(prefix)]
            bare = asked[len(prefix) :] if typed.casefold() == prefix.casefold() else asked
            owner = await self.bot.is_owner(ctx.author)  # the hidden commands are the owner's
            found = self._command_named(asked, owner) or self._command_named(
                bare.removeprefix("/"), owner
            )
            if found is None:
                # One line without backticks: else the name typed ends the code span and
                # the rest reads as the bot's own words (headings, masked links).
                shown = " ".join(asked.replace("`", "").split())
                raise BotError(f"No command called `{truncate(shown, ECHO_LIMIT)}`.")
            usage = f"{prefix}{found.qualified_name} {found.signature}".strip()
            description = found.help or "No description."
            if isinstance(found, commands.Group):  # used alone it only lists them
                listed = [c for c in found.walk_commands() if await runs_here(ctx, c)]
                description += "\n\n" + "\n".join(_command_lines(listed))
            embed = discord.Embed(
                title=truncate(usage, TITLE_LIMIT),
                description=truncate(description, DESCRIPTION_LIMIT),
            )
            await send_embeds(ctx, [embed], ephemeral=True)
            return
        intro = (
            f"Use `/` or the `{prefix}` prefix (or mention me). "
            f"`{prefix}help <command>` explains one."
        )
        sections = [
            (cog_name, _command_lines([c for c in cog.walk_commands() if await runs_here(ctx, c)]))
            for cog_name, cog in sorted(self.bot.cogs.items())
        ]
        await send_embeds(ctx, help_embeds(intro, sections), ephemeral=True)

    def _command_named(self, name: str, owner: bool) -> commands.Command[Any, ..., Any] | None:
        """The command `/help` explains: a group's fallback (`settings show`) is the group;
        words past a command's name (`ping extra`) name none; a hidden one, to the `owner`."""
        found = self.bot.get_command(name)
        if found is not None and len(found.qualified_name.split()) != len(name.split()):
            found = None  # discord.py's look-up stops at a command that is no group
        if found is None:
            parent, _, last = name.rpartition(" ")
            group = self.bot.get_command(parent) if parent else None
            if isinstance(group, commands.HybridGroup) and group.fallback == last:
                found = group
        return None if found is None or (found.hidden and not owner) else found

    # Server managers

    @commands.hybrid_group(name="settings", fallback="show", case_insensitive=True)
    @commands.guild_only()
    async def settings_group(self, ctx: Context) -> None:
        """Show this server's bot settings."""
        assert ctx.guild is not None
        await ctx.send(f"Prefix: `{self.bot.guild_settings.prefix(ctx.guild.id)}`", ephemeral=True)

    @settings_group.command(name="prefix")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(prefix="The new command prefix, 1 to 5 characters")
    async def settings_prefix(self, ctx: Context, prefix: str) -> None:
        """Change the command prefix for this server (Manage Server)."""
        assert ctx.guild is not None
        prefix = validate_prefix(prefix)
        await ctx.defer(ephemeral=True)  # the write may wait for another (SQLite has one writer)
        await self.bot.guild_settings.set_prefix(ctx.guild.id, prefix)
        await ctx.send(f"Prefix set to `{prefix}`.", ephemeral=True)

    # Owner only (prefix commands)

    @commands.command(hidden=True)
    @commands.is_owner()
    async def reload(self, ctx: Context, cog: str) -> None:
        """Reload a cog package, e.g. `reload music`."""
        name = cog if cog.startswith("cogs.") else f"cogs.{cog}"
        try:
            if name in self.bot.extensions:
                await self.bot.reload_extension(name)
            else:
                await self.bot.load_extension(name)
        # A dotted name under a module that does not exist (`reload foo.bar`) fails in
        # importlib before discord.py can wrap it.
        except (commands.ExtensionError, ModuleNotFoundError) as error:
            log.exception("reload of %s failed", name)
            cause = error.__cause__ or error
            raise BotError(f"Reloading `{name}` failed: {type(cause).__name__}.") from error
        self.bot.failed_extensions.pop(name, None)
        await answer(ctx, f"Reloaded `{name}`.")

    @commands.command(hidden=True)
    @commands.is_owner()
    async def sync(
        self, ctx: Context, scope: Literal["guild", "global", "clear"] = "guild"
    ) -> None:
        """Sync slash commands to this server (`guild`) or everywhere (`global`), or take
        this server's copies off (`clear`): once global, the copies list each one twice."""
        if scope == "global":
            synced = await self.bot.tree.sync()
        else:
            if ctx.guild is None:
                raise BotError("Use `sync global` in DMs.")
            if scope == "clear":
                self.bot.tree.clear_commands(guild=ctx.guild)
            else:
                self.bot.tree.copy_global_to(guild=ctx.guild)
            synced = await self.bot.tree.sync(guild=ctx.guild)
        if scope == "clear":
            cleared = "Took this server's copies of the slash commands off."
            if ctx.guild is not None and ctx.guild.id == self.bot.settings.dev_guild_id:
                cleared += " They come back at the next start while DEV_GUILD_ID names this server."
            await answer(ctx, cleared)
        else:
            await answer(ctx, f"Synced {len(synced)} commands ({scope}).")

    @commands.command(hidden=True)
    @commands.is_owner()
    async def shutdown(self, ctx: Context) -> None:
        """Stop the bot cleanly."""
        log.warning("shutdown requested by %s (%s)", ctx.author, ctx.author.id)
        try:
            await answer(ctx, "Shutting down.")
        # The stop was asked for, not the word (refused, or held by a long slowmode).
        except (discord.HTTPException, discord.RateLimited) as error:
            log.warning("could not say so in channel %s: %s", ctx.channel.id, error)
        await self.bot.close()

    # Errors

    @commands.Cog.listener()
    async def on_command_error(self, ctx: Context, error: commands.CommandError) -> None:
        if isinstance(error, commands.CommandNotFound):
            return
        if ctx.command and ctx.command.has_error_handler():
            return
        original = unwrap(error)
        message = user_message(original)
        usage = ""
        if message is None:
            message = self._report_unexpected(original, where=f"command {ctx.command}")
        elif (
            ctx.interaction is None
            and ctx.command is not None
            and isinstance(original, commands.UserInputError)
        ):
            # discord.py spells out the bot's mention (`@Gembot `), not its role's.
            role = (ctx.prefix or "").startswith("<@&")
            prefix = f"@{ctx.me.display_name} " if role else ctx.clean_prefix
            usage = f" Usage: `{prefix}{ctx.command} {ctx.command.signature}`"
        # Discord refuses a longer message outright, and the user would get nothing.
        message = truncate(message, DISCORD_LIMIT - len(usage)) + usage
        try:
            if ctx.interaction is None:
                await answer(ctx, message)
            else:
                await ctx.send(message, ephemeral=True)
        except (discord.HTTPException, discord.RateLimited):  # a long slowmode holds it, say
            log.warning("could not send the error reply in channel %s", ctx.channel.id)
            if ctx.interaction is None:
                await mark_unanswered(ctx.message, original)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = unwrap(error)
        message = user_message(original)
        if message is None:
            name = interaction.command.qualified_name if interaction.command else "?"
            message = self._report_unexpected(original, where=f"slash command {name}")
        message = truncate(message, DISCORD_LIMIT)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(message, ephemeral=True)
            else:
                await interaction.response.send_message(message, ephemeral=True)
        except (discord.HTTPException, discord.RateLimited):
            log.warning("could not send the error reply for interaction %s", interaction.id)

    @commands.Cog.listener()
    async def on_page_press(self, interaction: discord.Interaction, run: str, command: str) -> None:
        """A page button of an earlier run: its view went with the restart (this run's
        views answer their own buttons)."""
        if run == self.bot.run_id:
            return
        try:
            await interaction.response.send_message(
                PAGES_GONE.format(command=command), ephemeral=True
            )
        except discord.HTTPException:
            log.warning("could not answer the press of interaction %s", interaction.id)

    @staticmethod
    def _report_unexpected(error: BaseException, *, where: str) -> str:
        """Log a bug; the reference users get is the request id every log line of it carries."""
        request = current_request()
        reference = request.id if request is not None else secrets.token_hex(4)
        log.error("unexpected error in %s [ref %s]", where, reference, exc_info=error)
        return f"Sorry, something went wrong on my side. Reference: `{reference}`."
