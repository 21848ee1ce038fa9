"""Music sessions: per-guild players, their voice connections and messages, saved state.

:class:`Sessions` joins and leaves voice channels, creates a
:class:`~cogs.music.player.Player` per guild and answers its events (the
now-playing message, failures, leaving), saves each session when it changes
and at shutdown, and restores the saved sessions after a restart.  The cog's
commands go through it.

It is also the data owner (:mod:`utils.data_owners`) of the saved sessions: leaving
a guild only stops the music there, and the saved queue stays until the retention
grace ends and :meth:`Sessions.delete_guild` is called, so an accidental kick loses
nothing.  Sessions of guilds the bot is not in are kept at start-up, not resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import discord

from cogs.music.audio import TrackAudio
from cogs.music.channels import VoiceChannel, check_can_join, connect, send, voice_of
from cogs.music.errors import MusicError
from cogs.music.filters import Sound
from cogs.music.player import LeaveReason, Player
from cogs.music.progress import ProgressTicker, moving_embed
from cogs.music.queue import TrackQueue
from cogs.music.recovery import RECOVERING, Recovery
from cogs.music.sources import Resolver
from cogs.music.store import MusicStore, SaveQueue, Session
from cogs.music.tracks import Stream, Track
from cogs.music.views import clean, format_time, player_controls, player_embed
from utils.tasks import log_failure

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

DISCONNECT_TIMEOUT = 5.0
RESTORE_CONCURRENCY = 4
"""Voice channels rejoined at the same time after a restart."""
RESTORE_CONNECT_TIMEOUT = 90.0
"""Rejoining many channels meets the gateway's limit of 120 commands a minute (each
join is one); discord.py waits for the limit, so restores wait longer than /play."""


class Sessions:
    """Every guild's player and voice connection (see the module docstring)."""

    def __init__(self, bot: Bot, resolver: Resolver) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.resolver = resolver
        self.players: dict[int, Player] = {}
        self._now_playing: dict[int, discord.Message] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._queueing: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.saves = SaveQueue(MusicStore(bot.db), self._session)
        self.recovery = Recovery(self)
        self.progress = ProgressTicker(
            lambda guild_id: moving_embed(self, guild_id), bot.settings.music_progress_interval
        )

    def start(self) -> None:
        """Resume the saved sessions once the bot is ready."""
        self._spawn(self._restore_sessions(), "music-restore")

    async def close(self) -> None:
        """Save every session (to resume after a restart), leave voice everywhere, stop
        background work."""
        for task in list(self._tasks):
            task.cancel()
        self.progress.close()
        guild_ids = list(self.players)
        await self.saves.flush(guild_ids)
        await asyncio.gather(*(self.teardown(gid, forget=False) for gid in guild_ids))
        await self.saves.close()

    # Player events (cogs.music.player.Events) --------------------------------

    async def track_started(self, player: Player, track: Track) -> None:
        self.bot.dispatch("music_track_started", player.guild_id, track)  # for /history
        channel = self._text_channel(player)
        if channel is None:
            return
        await self._clear_now_playing(player.guild_id)
        embed, view = player_embed(player, track), player_controls(player)
        try:
            message = await channel.send(embed=embed, view=view)
        except discord.HTTPException as error:
            log.warning("could not post the now-playing message: %s", error)
            return
        self._now_playing[player.guild_id] = message
        self.progress.follow(player.guild_id, message)

    async def track_failed(self, player: Player, track: Track, reason: str) -> None:
        log.info("skipping %r in guild %s: %s", track.source, player.guild_id, reason)
        await self._say(player, f"⚠️ Skipped {clean(track.title)}: {reason}")

    async def queue_finished(self, player: Player) -> None:
        await self._clear_now_playing(player.guild_id)
        await self._say(player, "The queue is finished; add more with `/play`.")

    def request_leave(self, player: Player, reason: LeaveReason) -> None:
        notes = {
            LeaveReason.IDLE: "Nothing is playing, so I left the voice channel.",
            LeaveReason.ALONE: "Nobody is listening any more, so I left the voice channel.",
            LeaveReason.LOST: "I was disconnected from the voice channel, so I stopped the music.",
            LeaveReason.DROPPED: "I lost the voice connection and couldn't get it back, so I left.",
        }
        self._spawn(self.leave(player.guild_id, notes[reason], only=player), "music-leave")

    def changed(self, player: Player) -> None:
        self.saves.request(player.guild_id)

    async def recover(self, player: Player) -> bool:
        return await self.recovery.recover(player)

    # Players and voice ------------------------------------------------------

    def lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    def queueing(self, guild_id: int) -> asyncio.Lock:
        """Taken by /play from before its resolve to its enqueue, so tracks are queued in
        the order they were asked for; nothing else waits for it (not /stop, not a leave)."""
        return self._queueing.setdefault(guild_id, asyncio.Lock())

    def room(self, guild_id: int) -> int:
        player = self.players.get(guild_id)
        room = player.queue.room if player else self.settings.music_queue_limit
        if room <= 0:
            raise MusicError(f"The queue is full ({self.settings.music_queue_limit} tracks).")
        return min(room, self.settings.music_playlist_limit)

    async def abandon(self, guild_id: int, joining: asyncio.Task[Player], *, created: bool) -> None:
        """/play failed to resolve: leave again if it joined for nothing."""
        try:
            player = await joining
        except MusicError:
            return  # the resolve error is the one to report
        async with self.lock(guild_id):
            idle = player.queue.current is None and not len(player.queue)
            if created and idle and self.players.get(guild_id) is player:
                await self.teardown(guild_id, forget=True)

    async def join(self, guild: discord.Guild, channel: VoiceChannel, text_id: int) -> Player:
        """The guild's player, joining (or moving to) ``channel`` when needed; the caller
        holds the guild's :meth:`lock`."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is not None and voice is not None and voice.is_connected():
            if voice.channel != channel:
                if self.listeners(voice.channel):
                    raise MusicError(f"I'm playing in {voice.channel.mention}; join me there.")
                await voice.move_to(channel)
            player.text_channel_id = text_id
            return player
        if player is not None and self.recovery.recovering(player):
            raise MusicError(RECOVERING)
        if player is not None or voice is not None:
            await self.teardown(guild.id, forget=True)
        voice = await connect(channel)
        player = self.players[guild.id] = self._new_player(guild.id, voice, text_id)
        player.start()
        self.update_alone(guild)
        return player

    def _new_player(
        self,
        guild_id: int,
        voice: discord.VoiceClient,
        text_id: int | None,
        *,
        queue: TrackQueue | None = None,
        volume: int | None = None,
    ) -> Player:
        settings = self.settings
        return Player(
            guild_id,
            voice,
            queue if queue is not None else TrackQueue(settings.music_queue_limit),
            streams=self.resolver,
            open_audio=self._open_audio,
            events=self,
            volume=settings.music_default_volume if volume is None else volume,
            idle_timeout=settings.music_idle_timeout,
            alone_timeout=settings.music_alone_timeout,
            text_channel_id=text_id,
        )

    def _open_audio(self, stream: Stream, start: float, sound: Sound) -> TrackAudio:
        try:
            return TrackAudio(
                stream,
                proxy=self.resolver.proxy,
                start=start,
                sound=sound,
                executable=self.settings.music_ffmpeg,
            )
        except discord.ClientException as error:
            log.error("could not start FFmpeg (%s): %s", self.settings.music_ffmpeg, error)
            raise MusicError("FFmpeg isn't available on the bot's machine.") from error

    def controlled(self, guild: discord.Guild, member: discord.Member) -> Player:
        """The player, if ``member`` is in its voice channel (controls need that)."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is None or voice is None:
            raise MusicError("I'm not playing anything right now.")
        if member.voice is None or member.voice.channel != voice.channel:
            raise MusicError(f"Join {voice.channel.mention} to control the music.")
        return player

    def listeners(self, channel: VoiceChannel) -> list[int]:
        """Ids of the people (not bots) in a voice channel."""
        guild = channel.guild
        return [
            user_id
            for user_id in channel.voice_states
            if not ((member := guild.get_member(user_id)) and member.bot) and user_id != guild.me.id
        ]

    def update_alone(self, guild: discord.Guild) -> None:
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is not None and voice is not None:
            player.set_alone(not self.listeners(voice.channel))

    async def leave(
        self, guild_id: int, note: str | None = None, *, only: Player | None = None
    ) -> None:
        """End a guild's session: stop, disconnect, forget the saved queue, say why."""
        async with self.lock(guild_id):
            player = self.players.get(guild_id)
            if only is not None and player is not only:
                return
            channel = self._text_channel(player) if player else None
            await self.teardown(guild_id, forget=True)
        if note and channel is not None:
            await send(channel, note)

    async def teardown(self, guild_id: int, *, forget: bool) -> int:
        """Stop the guild's player and leave voice; ``forget`` also deletes its saved
        session and now-playing message (kept when suspending for a restart, or when
        the bot left the guild). Returns how many saved sessions were deleted."""
        deleted = 0
        player = self.players.pop(guild_id, None)
        if player is not None:
            await player.close()
        if forget:
            await self._clear_now_playing(guild_id)
            deleted = await self.saves.forget(guild_id)
        self._now_playing.pop(guild_id, None)
        self.progress.stop(guild_id)
        # Not through the guild: after a kick it is gone, and its connection must go too.
        voices = (v for v in self.bot.voice_clients if isinstance(v, discord.VoiceClient))
        voice = next((v for v in voices if v.guild.id == guild_id), None)
        if voice is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_TIMEOUT):
                    await voice.disconnect(force=True)
        return deleted

    # Retention (utils.data_owners) ------------------------------------------

    async def delete_channel(self, channel_id: int) -> int:
        """Nothing is saved per channel (a session whose voice channel is gone is
        dropped when it would resume)."""
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        """Stop any music in the guild and delete its saved queue; returns 1 if one was
        saved."""
        async with self.lock(guild_id):
            deleted = await self.teardown(guild_id, forget=True)
        self._locks.pop(guild_id, None)
        self._queueing.pop(guild_id, None)
        return deleted

    # Restoring after a restart ---------------------------------------------

    async def _restore_sessions(self) -> None:
        await self.bot.wait_until_ready()
        joining = asyncio.Semaphore(RESTORE_CONCURRENCY)
        sessions = await self.saves.store.load_all()
        await asyncio.gather(*(self._restore_one(session, joining) for session in sessions))

    async def _restore_one(self, session: Session, joining: asyncio.Semaphore) -> None:
        async with joining:
            if session.guild_id in self.players:
                return
            guild = self.bot.get_guild(session.guild_id)
            if guild is None or guild.unavailable:
                # Removed (perhaps by accident) or in an outage: keep the queue for when
                # the bot is back; retention deletes it if the bot does not come back.
                log.info("not resuming music in guild %s: not in it now", session.guild_id)
                return
            try:
                await self._restore(session, guild)
            except MusicError as error:
                log.info("not resuming music in guild %s: %s", session.guild_id, error)
                await self.saves.forget(session.guild_id)
            except discord.DiscordException as error:
                log.warning("could not resume music in guild %s: %r", session.guild_id, error)
                await self.saves.forget(session.guild_id)

    async def _restore(self, session: Session, guild: discord.Guild) -> None:
        if not self.settings.music_resume_on_start:
            raise MusicError("MUSIC_RESUME_ON_START is off")
        channel = guild.get_channel(session.voice_channel_id)
        if not isinstance(channel, VoiceChannel):
            raise MusicError("the voice channel is gone")
        if session.current is None and not session.upcoming:
            raise MusicError("the queue was empty")
        check_can_join(channel)
        async with self.lock(guild.id):
            queue = TrackQueue(self.settings.music_queue_limit)
            queue.restore(session.current, session.upcoming, session.loop)
            voice = await connect(channel, within=RESTORE_CONNECT_TIMEOUT)
            player = self._new_player(
                guild.id, voice, session.text_channel_id, queue=queue, volume=session.volume
            )
            self.players[guild.id] = player
            player.start(position=session.position, paused=session.paused)
            self.update_alone(guild)
        if session.current is not None:
            await self._say(
                player,
                f"🔄 Back after a restart: resuming {clean(session.current.title)} "
                f"at {format_time(session.position)}.",
            )

    # Messages ---------------------------------------------------------------

    def _session(self, guild_id: int) -> Session | None:
        """What to save for a guild (None once it has no player)."""
        player = self.players.get(guild_id)
        guild = self.bot.get_guild(guild_id)
        voice = voice_of(guild) if guild else None
        if player is None or voice is None:
            return None
        return Session(
            guild_id=guild_id,
            voice_channel_id=voice.channel.id,
            text_channel_id=player.text_channel_id,
            current=player.queue.current,
            upcoming=list(player.queue.upcoming),
            position=player.position,
            loop=player.queue.loop,
            volume=player.volume,
            paused=player.paused,
        )

    def _text_channel(self, player: Player) -> discord.abc.Messageable | None:
        if player.text_channel_id is None:
            return None
        channel = self.bot.get_channel(player.text_channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def _say(self, player: Player, content: str) -> None:
        channel = self._text_channel(player)
        if channel is not None:
            await send(channel, content)

    async def refresh_now_playing(self, player: Player) -> None:
        message, current = self._now_playing.get(player.guild_id), player.queue.current
        if message is None or current is None:
            return
        try:
            await message.edit(embed=player_embed(player, current), view=player_controls(player))
        except discord.HTTPException as error:
            log.debug("could not update the now-playing message: %s", error)

    async def _clear_now_playing(self, guild_id: int) -> None:
        message = self._now_playing.pop(guild_id, None)
        self.progress.stop(guild_id)
        if message is None:
            return
        try:
            await message.delete()
        except discord.HTTPException as error:
            log.debug("could not delete the now-playing message: %s", error)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)
