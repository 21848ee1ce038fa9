"""Entry point: read Settings, open the shared services, run the Bot until stopped."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.ai.directors import Directors
from cogs.ai.log import ChatLogReader
from cogs.ai.store import ChatStore
from config import ConfigError, Settings, load_settings, stray_dotenv_names
from utils.data_owners import DataOwners
from utils.db import open_database
from utils.gateway import ShardedState
from utils.gemini import GeminiProvider
from utils.gemini_errors import is_transient
from utils.guild_settings import GuildSettings
from utils.health import HealthServer
from utils.instance_lock import AlreadyLocked, InstanceLock
from utils.log import setup_logging, start_request
from utils.memory.service import MemoryService
from utils.memory.stored import StoredMemories
from utils.metrics import Metrics
from utils.reliability.circuit_breaker import CircuitBreaker
from utils.reliability.shutdown import ShutdownManager
from utils.startup import START_FAILURES, failed_start
from utils.tools import ToolRegistry
from utils.usage import UsageStore

log = logging.getLogger("bot")

COGS_DIR = Path(__file__).with_name("cogs")

# Nothing the bot sends pings anyone, whatever a user, a title or the model wrote: no
# message of the bot's is meant to notify (replies are sent with mention_author=False).
SAFE_MENTIONS = discord.AllowedMentions.none()


def discover_extensions(directory: Path = COGS_DIR) -> list[str]:
    """Every cog package under `cogs/`, as dotted extension names."""
    return sorted(f"cogs.{path.parent.name}" for path in directory.glob("*/__init__.py"))


class _Tree(app_commands.CommandTree):
    """Slash commands run with a request context for the log, as messages do."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        start_request(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
        )
        return True


class Bot(commands.AutoShardedBot):
    """The bot: owns the shared services that cogs reach through `self.bot`."""

    def __init__(
        self,
        settings: Settings,
        *,
        extensions: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix=self._prefix_for,
            intents=intents,
            allowed_mentions=SAFE_MENTIONS,
            # Discord asking for a longer wait (a channel renamed twice in 10 minutes, a long
            # slowmode) raises `discord.RateLimited` at once: 30 s is discord.py's least.
            max_ratelimit_timeout=30.0,
            owner_ids=set(settings.owner_ids) or None,
            help_command=None,
            case_insensitive=True,
            strip_after_prefix=True,
            tree_cls=_Tree,
            shard_count=settings.shard_count,
            # None: every shard (discord.py's annotation says a list, its code takes None).
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,  # pyright: ignore[reportArgumentType]
            **options,
        )
        self.settings = settings
        self.clock = clock  # what the timing of the breaker follows; tests move it
        self.extensions_to_load = (
            list(extensions) if extensions is not None else discover_extensions()
        )
        url = settings.database_url
        self.db = open_database(
            url.get_secret_value() if url else "",
            settings.database_path,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )
        self.metrics = Metrics()
        self.health: HealthServer | None = None
        self.usage = UsageStore(self.db)
        self.chats = ChatStore(
            self.db,
            context_tokens=settings.ai_context_tokens,
            history_limit=settings.ai_history_limit,
        )
        self.guild_settings = GuildSettings(self.db, settings.command_prefix)
        self.data_owners = DataOwners()
        self.data_owners.register("guild settings", self.guild_settings)
        self.data_owners.register("ai chat", self.chats.data)  # its cache goes with the rows
        for store in (self.guild_settings, self.chats):  # caches other processes change too
            self.db.on_change(store.changed)
        self.gemini: GeminiProvider | None = None
        self.memory: MemoryService | None = None
        self.tools = ToolRegistry()  # what the AI can do; cogs register their tools
        self.directors = Directors()  # channels whose replies a feature directs (scenes)
        self.shutdown_manager = ShutdownManager()
        self.started_at = time.monotonic()
        self.run_id = secrets.token_hex(4)  # page buttons of an earlier run are told apart
        self.commands_run = 0
        self.failed_extensions: dict[str, str] = {}
        self._start: asyncio.Task[None] | None = None
        self._register_closers()

    def _get_state(self, **options: Any) -> ShardedState:
        # The cache kept right across new gateway sessions (see utils/gateway.py).
        return ShardedState(
            dispatch=self.dispatch,
            handlers=self._handlers,
            hooks=self._hooks,
            http=self.http,
            **options,
        )

    @property
    def breakers(self) -> list[CircuitBreaker]:
        """Every circuit breaker, for /stats and /metrics; each belongs to its client."""
        return [self.gemini.breaker] if self.gemini is not None else []

    def owns(self, guild_id: int | None) -> bool:
        """Whether this process runs the shard of ``guild_id`` (None: a DM, shard 0's).

        Work kept for a guild (music sessions, memory indexes, scenes) is restored only
        where its shard runs; with every shard in one process that is always here.
        """
        ids = self.settings.shard_ids
        if ids is None:
            return True
        shard = 0 if guild_id is None else (guild_id >> 22) % (self.shard_count or 1)
        return shard in ids

    @staticmethod
    def _prefix_for(bot: Bot, message: discord.Message) -> list[str]:
        guild_id = message.guild.id if message.guild else None
        prefix = bot.guild_settings.prefix(guild_id)
        # In any letter case, as command names are: a phone capitalises `g!play`.
        typed = message.content[: len(prefix)]
        if typed.casefold() == prefix.casefold():
            prefix = typed
        prefixes = commands.when_mentioned_or(prefix)(bot, message)
        # Its own role is a mention of the bot too: Discord offers it beside the bot when
        # @ and its name are typed (the AI takes it as one as well).
        guild = message.guild if message.content.startswith("<@&") else None
        if guild is not None and (role := guild.self_role) is not None:
            prefixes.append(f"<@&{role.id}> ")
        return prefixes

    # Lifecycle

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        """Log in, set up, connect the shards and run until closed.

        It runs as a task that close() ends once the shutdown has run: stopped during
        start-up, discord.py would go on, retrying a shard for ever on the closed session.
        """
        self._start = asyncio.create_task(
            super().start(token, reconnect=reconnect), name="discord start"
        )
        try:
            await self._start
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if caller is not None and caller.cancelling():
                raise  # our caller was cancelled, not ended by close()

    async def setup_hook(self) -> None:
        await self.db.connect()
        if self.shutdown_manager.is_shutting_down:
            return  # stopped while it opened (an upgrade's migrations, say): it is closed
        if self.settings.health_port is not None:
            self.health = HealthServer(
                self,
                host=self.settings.health_host,
                port=self.settings.health_port,
                max_lag=self.settings.health_max_lag,
            )
            await self.health.start()
        await self.guild_settings.load()
        if self.settings.gemini_api_key is not None:
            self.gemini = self._make_gemini(self.settings.gemini_api_key.get_secret_value())
        if self.settings.memory_enabled:
            self.memory = MemoryService.from_settings(
                self.settings,
                self.db,
                chat_log=ChatLogReader(self.db),
                provider=self.gemini,
                usage=self.usage,
                owns=self.owns,  # indexes and consolidation for this process's guilds only
            )
            await self.memory.start()
            self.data_owners.register("memory", self.memory)
        else:  # what was remembered while memory was on still goes with its channel or guild
            self.data_owners.register(
                "memory", StoredMemories(self.db, self.settings.data_dir / "memory")
            )
        for name in self.extensions_to_load:
            if self.shutdown_manager.is_shutting_down:
                return  # stopped during start-up: close() ends the start
            try:
                await self.load_extension(name)
            except commands.ExtensionError as error:
                self.failed_extensions[name] = type(error.__cause__ or error).__name__
                log.exception("could not load %s; the other cogs still run", name)
            else:
                log.info("loaded %s", name)
        if self.shutdown_manager.is_shutting_down:
            return
        if self.settings.dev_guild_id:
            await self._sync_dev_guild(self.settings.dev_guild_id)
        # What start-up made (modules, cogs, yt-dlp's extractors: ~190k objects) lives as
        # long as the bot. Left out of the collector's full passes, they no longer stop
        # every guild, voice included, for ~100 ms each time (docs/BENCHMARKS.md).
        gc.collect()
        gc.freeze()

    async def _sync_dev_guild(self, guild_id: int) -> None:
        """Slash commands appear at once in DEV_GUILD_ID; a server the bot is not in (any
        more) costs only that, not the start."""
        guild = discord.Object(guild_id)
        self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        # Not in that server (any more), or Discord limiting syncs: those synced before stay.
        except (discord.HTTPException, discord.RateLimited) as error:
            log.warning("could not sync slash commands to DEV_GUILD_ID %s: %s", guild_id, error)
            return
        log.info("synced %d slash commands to guild %s", len(synced), guild.id)

    async def launch_shards(self) -> None:
        if not self.shutdown_manager.is_shutting_down:  # stopped during setup_hook
            await super().launch_shards()

    def _make_gemini(self, api_key: str) -> GeminiProvider:
        settings = self.settings
        breaker = CircuitBreaker(
            "gemini",
            failure_threshold=settings.ai_breaker_threshold,
            reset_timeout=settings.ai_breaker_reset,
            is_failure=is_transient,
            clock=self.clock,
        )
        return GeminiProvider(
            api_key,
            breaker,
            base_url=settings.gemini_base_url,
            model=settings.gemini_model,
            fallback_models=settings.gemini_fallback_models,
            allowed_models=settings.gemini_allowed_models,
            timeout=settings.gemini_timeout,
            max_retries=settings.gemini_max_retries,
            metrics=self.metrics,
        )

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        """Every handler of a message runs with its request context (for the log)."""
        if event_name != "message":
            super().dispatch(event_name, *args, **kwargs)
            return
        message: discord.Message = args[0]
        context = contextvars.copy_context()
        context.run(
            start_request,
            guild_id=message.guild.id if message.guild else None,
            channel_id=message.channel.id,
            user_id=message.author.id,
        )
        context.run(super().dispatch, event_name, *args, **kwargs)

    async def on_ready(self) -> None:
        log.info("ready as %s in %d guilds", self.user, len(self.guilds))

    async def on_command_completion(self, ctx: commands.Context[Bot]) -> None:
        self.commands_run += 1
        self.metrics.messages_answered.labels("command").inc()

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: object
    ) -> None:
        # Hybrid commands invoked by slash already count through on_command_completion.
        if not isinstance(command, commands.hybrid.HybridAppCommand):
            self.commands_run += 1
            self.metrics.messages_answered.labels("command").inc()

    async def close(self) -> None:
        """Stop the bot: every caller waits for the same single run of the shutdown; then
        start() ends, unless it is the caller (it then returns or raises by itself)."""
        await self.shutdown_manager.shutdown("bot closing")
        if self._start is not None and self._start is not asyncio.current_task():
            self._start.cancel()

    def _register_closers(self) -> None:
        """The bot's part of the shutdown, after the cogs' (priorities below 100): leave
        Discord (discord.py then unloads the cogs, already stopped), then close the
        services, each under its own timeout; the database last."""
        register = self.shutdown_manager.register
        register("discord", partial(commands.AutoShardedBot.close, self), priority=100, timeout=10)
        register("health server", lambda: self.health and self.health.close(), priority=110)
        register("memory", lambda: self.memory and self.memory.close(), priority=120, timeout=15)
        register("gemini", lambda: self.gemini and self.gemini.close(), priority=130)
        register("database", self.db.close, priority=200, timeout=15)
        register("start-up objects", gc.unfreeze, priority=210)  # collectable again


def claim_data_dir(data_dir: Path) -> InstanceLock | None:
    """Lock DATA_DIR for this process's life, or say in one line why not."""
    lock = InstanceLock(data_dir)
    try:
        lock.acquire()
    except AlreadyLocked:
        print(
            f"Another bot is already running with DATA_DIR={data_dir}; stop it first",
            file=sys.stderr,
        )
        return None
    except OSError as error:
        why = "it is a file, not a directory" if isinstance(error, FileExistsError) else None
        print(f"Cannot use DATA_DIR={data_dir}: {why or error.strerror}", file=sys.stderr)
        return None
    return lock


async def run(bot: Bot) -> None:
    """Start `bot` and return once it has stopped (by `close()` or a signal)."""
    async with bot:
        bot.shutdown_manager.install_signal_handlers(bot.close)
        try:
            await bot.start(bot.settings.discord_token.get_secret_value())
        finally:
            # start() returns once the gateway is closed; let the rest of close() finish.
            await bot.close()
            bot.shutdown_manager.remove_signal_handlers()


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    lock = claim_data_dir(settings.data_dir)  # held until the process exits
    if lock is None:
        return 1
    try:
        setup_logging(
            level=settings.log_level,
            fmt=settings.log_format,
            log_dir=settings.log_dir,
            secrets=settings.secrets,
        )
    except OSError as error:  # e.g. DATA_DIR/logs left behind by a run as another user
        print(f"Cannot write the log in {settings.log_dir}: {error.strerror}", file=sys.stderr)
        return 1
    if stray := stray_dotenv_names():
        log.warning(
            "ignored in .env, as no setting of the bot has the name (see .env.example): %s",
            ", ".join(stray),
        )
    try:
        asyncio.run(run(Bot(settings)))
    except START_FAILURES as error:
        return failed_start(settings, error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
