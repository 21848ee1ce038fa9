"""Music sessions: per-guild players, their voice connections and messages, saved state.

:class:`Sessions` joins and leaves voice channels, creates a
:class:`~cogs.music.player.Player` per guild and answers its events (the
now-playing message, failures, leaving, autoplay), saves each session when it
changes and at shutdown, restores them after a restart (:mod:`cogs.music.restore`),
and owns and applies each server's music settings (:mod:`cogs.music.settings`):
:meth:`Sessions.controlled` checks every DJ-only control.  The commands go through it.

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
from cogs.music.autoplay import Autoplay
from cogs.music.channels import (
    CONNECT_TIMEOUT,
    VoiceChannel,
    become_speaker,
    check_can_join,
    connect,
    send,
    voice_of,
)
from cogs.music.control import SkipVotes, Vote, dj_refusal, is_dj, unlimited
from cogs.music.errors import MusicError
from cogs.music.filters import Sound
from cogs.music.notices import SkipNotices
from cogs.music.player import LeaveReason, Player
from cogs.music.progress import ProgressTicker, moving_embed
from cogs.music.queue import TrackQueue
from cogs.music.recovery import RECOVERING, Recovery
from cogs.music.restore import restore_sessions
from cogs.music.settings import MusicSettings, MusicSettingsStore
from cogs.music.sources import Resolver
from cogs.music.store import MusicStore, SaveQueue, Session
from cogs.music.tracks import Stream, Track
from cogs.music.views import Cut, Room, player_controls, player_embed
from utils.data_owners import Place
from utils.tasks import log_failure
from utils.text import counted

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

DISCONNECT_TIMEOUT = 5.0


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
        self._kept: set[int] = set()
        self.visits: dict[int, int] = {}
        """Guild → the voice channel a /play took the bot to, away from its 24/7 channel:
        not a new 24/7 channel (:class:`~cogs.music.modes.MusicModes`); once it empties
        the bot goes back (:meth:`update_alone`)."""
        """Guilds whose saved queue could not resume after a restart (:meth:`keep_saved`)."""
        self.saves = SaveQueue(MusicStore(bot.db), self._session)
        self.music_settings = MusicSettingsStore(bot.db, keep=lambda gid: gid in self.players)
        self.autoplay = Autoplay(resolver)
        self.votes = SkipVotes()
        self.skips = SkipNotices()
        self.recovery = Recovery(self)
        self.progress = ProgressTicker(
            lambda guild_id: moving_embed(self, guild_id), bot.settings.music_progress_interval
        )

    def start(self) -> None:
        """Resume the saved sessions once the bot is ready."""
        self._spawn(restore_sessions(self), "music-restore")

    async def close(self) -> None:
        """Save every session (to resume after a restart), leave voice everywhere, take
        the buttons off the now-playing messages, stop background work."""
        for task in list(self._tasks):
            task.cancel()
        self.progress.close()
        guild_ids = list(self.players)
        await self.saves.flush(guild_ids)
        messages = [self._now_playing[gid] for gid in guild_ids if gid in self._now_playing]
        await asyncio.gather(
            *(self.teardown(gid, forget=False) for gid in guild_ids),
            *(_without_buttons(message) for message in messages),  # out of date after it
        )
        await self.saves.close()

    # Player events (cogs.music.player.Events) --------------------------------

    async def track_started(self, player: Player, track: Track) -> None:
        self.votes.reset(player.guild_id)
        self.skips.end(player.guild_id)
        self.autoplay.played(player.guild_id, track)
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
        if track.autoplay:
            self.autoplay.failed(player.guild_id, track)
        channel = self._text_channel(player)
        if channel is not None:
            await self.skips.failed(player.guild_id, channel, track.title, reason)

    async def queue_finished(self, player: Player) -> None:
        self.votes.reset(player.guild_id)
        self.skips.end(player.guild_id)
        if await self._autoplay(player):
            return
        await self._clear_now_playing(player.guild_id)
        await self.say(player, "The queue is finished; add more with `/play`.")

    async def _autoplay(self, player: Player) -> bool:
        """With autoplay on, queue a track related to the last one; whether one was."""
        if not (await self.music_settings.get(player.guild_id)).autoplay:
            return False
        track = await self.autoplay.related(player.guild_id)
        if track is None:
            await self.say(player, "🔮 Autoplay found nothing new to play.")
            return False
        if not len(player.queue):  # else someone queued a track meanwhile: that one plays
            player.add([track])
        return True

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

    async def share(
        self, guild: discord.Guild, member: discord.Member, channel: VoiceChannel
    ) -> int | None:
        """The most tracks ``member`` may have waiting in the queue when playing in
        ``channel`` (MUSIC_MAX_QUEUED_PER_MEMBER), or None: no cap, or they are exempt
        (:func:`~cogs.music.control.unlimited`)."""
        cap = self.settings.music_max_queued_per_member
        if not cap or unlimited(member, channel, await self.music_settings.get(guild.id)):
            return None
        return cap

    def room(self, guild_id: int, member_id: int, share: int | None) -> Room:
        """How many tracks ``member_id`` may add now: the queue's room, at most a
        playlist's worth, and what is left of their ``share``; MusicError when none."""
        player = self.players.get(guild_id)
        room = Room(player.queue.room if player else self.settings.music_queue_limit, Cut.QUEUE)
        if room.count <= 0:
            raise MusicError(f"The queue is full ({self.settings.music_queue_limit} tracks).")
        if share is not None:
            queued = player.queue.queued_by(member_id) if player else 0
            if queued >= share:
                raise MusicError(
                    f"You have {counted(queued, 'track')} waiting in the queue, as many as "
                    "one person may add here; add more once some have played."
                )
            room = min(room, Room(share - queued, Cut.SHARE))
        return min(room, Room(self.settings.music_playlist_limit, Cut.PLAYLIST))

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

    def keep_saved(self, guild_id: int) -> None:
        """The guild's saved queue could not resume (voice turned the bot away): keep it
        for the next start until something else is queued, neither overwritten by an
        empty player nor deleted when that player leaves."""
        self._kept.add(guild_id)

    async def join(self, guild: discord.Guild, channel: VoiceChannel, text_id: int) -> Player:
        """The guild's player, joining (or moving to) ``channel`` when needed; the caller
        holds the guild's :meth:`lock`."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is not None and voice is not None and voice.is_connected():
            if voice.channel != channel:
                if self.listeners(voice.channel):
                    raise MusicError(f"I'm playing in {voice.channel.mention}; join me there.")
                await self._note_visit(guild.id, channel)
                await voice.move_to(channel)
            player.text_channel_id = text_id
            return player
        if player is not None and self.recovery.recovering(player):
            raise MusicError(RECOVERING)
        if player is not None or voice is not None:
            await self.teardown(guild.id, forget=True)
        await self._note_visit(guild.id, channel)
        voice = await connect(channel)
        player = await self.new_player(guild.id, voice, text_id)
        player.start()
        self.update_alone(guild)
        await self.take_the_stage(guild)
        return player

    async def _note_visit(self, guild_id: int, channel: VoiceChannel) -> None:
        """Before joining ``channel`` for a /play: note it if it is not the 24/7 one."""
        rules = await self.music_settings.get(guild_id)
        if rules.stay and rules.stay_channel_id not in (None, channel.id):
            self.visits[guild_id] = channel.id
        else:
            self.visits.pop(guild_id, None)

    async def _go_home(self, guild: discord.Guild) -> None:
        """Back to the 24/7 channel from a visit nobody listens to any more."""
        rules = await self.music_settings.get(guild.id)
        home = guild.get_channel(rules.stay_channel_id) if rules.stay_channel_id else None
        async with self.lock(guild.id):
            voice = voice_of(guild)
            if voice is None or self.visits.get(guild.id) != voice.channel.id:
                return  # moved, left or back already
            if self.listeners(voice.channel):
                return  # someone came back meanwhile: the visit goes on
            del self.visits[guild.id]
            if not rules.stay or not isinstance(home, VoiceChannel):
                return  # 24/7 is off, or its channel is gone: the alone timer decides
            try:
                check_can_join(home)
                await voice.move_to(home, timeout=CONNECT_TIMEOUT)
            except (MusicError, TimeoutError) as error:
                log.warning(
                    "could not go back to the 24/7 channel in guild %s: %s", guild.id, error
                )
        self.update_alone(guild)

    async def new_player(
        self,
        guild_id: int,
        voice: discord.VoiceClient,
        text_id: int | None,
        *,
        queue: TrackQueue | None = None,
        volume: int | None = None,
    ) -> Player:
        """A guild's player, registered (not started) with no await after loading the
        guild's settings: they stay cached as long as it exists (is_dj reads them)."""
        settings, rules = self.settings, await self.music_settings.get(guild_id)
        player = self.players[guild_id] = Player(
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
        player.stay = rules.stay
        return player

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

    def listening(self, guild: discord.Guild, member: discord.Member) -> Player:
        """The player, if ``member`` is in its voice channel (every control needs that)."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is None or voice is None:
            raise MusicError("I'm not playing anything right now.")
        if member.voice is None or member.voice.channel != voice.channel:
            raise MusicError(f"Join {voice.channel.mention} to control the music.")
        return player

    def controlled(self, guild: discord.Guild, member: discord.Member) -> Player:
        """The player, if ``member`` is in its voice channel and may use the DJ-only
        controls (pause, stop, seek, queue edits, volume, filters: :mod:`~.control`)."""
        player = self.listening(guild, member)
        if not self.is_dj(guild, member):
            raise MusicError(dj_refusal(guild, self.music_settings.cached(guild.id)))
        return player

    def is_dj(self, guild: discord.Guild, member: discord.Member) -> bool:
        rules = self.music_settings.cached(guild.id) or MusicSettings(guild.id)
        return (voice := voice_of(guild)) is not None and is_dj(member, voice.channel, rules)

    def skip(self, guild: discord.Guild, member: discord.Member) -> tuple[Track, Vote | None]:
        """Skip for a DJ or whoever asked for the track, else count a vote (more than half
        of the listeners skip); the track and the vote (None: skipped outright)."""
        player = self.listening(guild, member)
        track, voice = player.queue.current, voice_of(guild)
        if track is None or not player.playing or voice is None:
            raise MusicError("Nothing is playing.")
        if self.is_dj(guild, member) or track.requester_id == member.id:
            return player.skip(), None
        vote = self.votes.vote(guild.id, member.id, self.listeners(voice.channel))
        if vote.passed:
            player.skip()
        return track, vote

    async def recount_votes(self, guild: discord.Guild) -> None:
        """Someone left the channel: the votes to skip may now be more than half."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        track = player.queue.current if player else None
        if player is None or voice is None or track is None or not player.playing:
            return
        vote = self.votes.recount(guild.id, self.listeners(voice.channel))
        if vote is not None and vote.passed:
            self.votes.reset(guild.id)  # counted: another leave must not skip again
            player.skip()
            await self.say(player, vote.message(track.title))

    async def set_stay(
        self, guild: discord.Guild, channel: VoiceChannel | None, text_id: int
    ) -> None:
        """24/7 on in ``channel`` (joining it), or off with None."""
        if channel is not None:
            async with self.lock(guild.id):
                await self.join(guild, channel, text_id)
        await self.music_settings.update(
            guild.id,
            stay=channel is not None,
            stay_channel_id=channel.id if channel else None,
            stay_text_channel_id=text_id if channel else None,
        )
        self.visits.pop(guild.id, None)  # the new 24/7 channel, or no more 24/7
        player = self.players.get(guild.id)
        if player is not None:
            player.stay = channel is not None
            self.update_alone(guild)

    async def take_the_stage(self, guild: discord.Guild) -> None:
        """On a Stage channel, become a speaker, or ask to and say so (:func:`become_speaker`)."""
        player = self.players.get(guild.id)
        if player is not None and (note := await become_speaker(guild.me)):
            await self.say(player, note)

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
            alone = not self.listeners(voice.channel)
            if alone and self.visits.get(guild.id) == voice.channel.id:
                self._spawn(self._go_home(guild), "music-home")
            player.set_alone(alone)

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
        session (unless it is kept: :meth:`keep_saved`) and now-playing message (kept
        when suspending for a restart, or when the bot left the guild). Returns how many
        saved sessions were deleted."""
        deleted = 0
        player = self.players.pop(guild_id, None)
        if player is not None:
            await player.close()
        self.votes.reset(guild_id)
        self.skips.end(guild_id)
        self.autoplay.forget(guild_id)
        self.visits.pop(guild_id, None)
        if forget:
            await self._clear_now_playing(guild_id)
        self._now_playing.pop(guild_id, None)
        self.progress.stop(guild_id)
        # Not through the guild: after a kick it is gone, and its connection must go too.
        voices = (v for v in self.bot.voice_clients if isinstance(v, discord.VoiceClient))
        voice = next((v for v in voices if v.guild.id == guild_id), None)
        if voice is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_TIMEOUT):
                    await voice.disconnect(force=True)
        if forget and guild_id not in self._kept:  # last: a database error still leaves voice
            deleted = await self.saves.forget(guild_id)
        return deleted

    # Retention (utils.data_owners) ------------------------------------------

    async def delete_channel(self, channel_id: int) -> int:
        """Nothing is saved per channel (a session whose voice channel is gone is
        dropped when it would resume)."""
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        """Stop any music in the guild and delete its saved queue; returns 1 if one was
        saved."""
        self._kept.discard(guild_id)
        async with self.lock(guild_id):
            deleted = await self.teardown(guild_id, forget=True)
        self._locks.pop(guild_id, None)
        self._queueing.pop(guild_id, None)
        return deleted

    async def places(self) -> set[Place]:
        return await self.saves.store.places()

    # Messages ---------------------------------------------------------------

    def _session(self, guild_id: int) -> Session | None:
        """What to save for a guild (None once it has no player)."""
        player = self.players.get(guild_id)
        guild = self.bot.get_guild(guild_id)
        voice = voice_of(guild) if guild else None
        if player is None or voice is None:
            return None
        session = Session.of(player, voice.channel.id)
        if guild_id in self._kept and session.current is None and not session.upcoming:
            return None  # nothing queued yet: the kept queue stays
        self._kept.discard(guild_id)  # this session replaces it
        return session

    def _text_channel(self, player: Player) -> discord.abc.Messageable | None:
        if player.text_channel_id is None:
            return None
        channel = self.bot.get_channel(player.text_channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def say(self, player: Player, content: str) -> None:
        channel = self._text_channel(player)
        if channel is not None:
            await send(channel, content)

    def refresh_now_playing(self, player: Player) -> None:
        """Show the player as it is on its now-playing message, in the background: the
        edit may wait out the channel's rate limit (shared with AI replies streaming
        there), and the command's own reply must not wait (an interaction has 3 s)."""
        self._spawn(self._refresh_now_playing(player), "music-refresh")

    async def _refresh_now_playing(self, player: Player) -> None:
        message, current = self._now_playing.get(player.guild_id), player.queue.current
        if message is None or current is None or self.players.get(player.guild_id) is not player:
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


async def _without_buttons(message: discord.Message) -> None:
    try:
        await message.edit(view=None)
    except discord.HTTPException as error:
        log.debug("could not take the buttons off the now-playing message: %s", error)
