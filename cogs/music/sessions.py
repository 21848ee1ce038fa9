"""Music sessions: per-guild players, their voice connections and messages, saved state.

:class:`Sessions` joins and leaves voice channels, creates a
:class:`~cogs.music.player.Player` per guild and answers its events (the
now-playing message: :mod:`cogs.music.now_playing`; failures, leaving, autoplay),
saves each session when it changes and at shutdown, restores them after a restart
(:mod:`cogs.music.restore`), and owns and applies each server's music settings
(:mod:`cogs.music.settings`).  The commands go through it: who may use the player
is :mod:`cogs.music.access`, how much one may queue :mod:`cogs.music.shares`, and
24/7 and its visits :mod:`cogs.music.visits`.

It is also the data owner (:mod:`utils.data_owners`) of the saved sessions: leaving
a guild only stops the music there, and the saved queue stays until the retention
grace ends and :meth:`Sessions.delete_guild` is called, so an accidental kick loses
nothing.  Sessions of guilds the bot is not in are kept at start-up, not resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import discord

from cogs.music.access import PlayerAccess
from cogs.music.audio import open_audio
from cogs.music.autoplay import Autoplay
from cogs.music.channels import (
    VoiceChannel,
    become_speaker,
    connect,
    listeners,
    send,
    text_channel,
    voice_of,
)
from cogs.music.control import SkipVotes, Vote
from cogs.music.errors import MusicError
from cogs.music.notices import LEAVE_NOTES, STOPPED_NOTE, SkipNotices
from cogs.music.now_playing import NowPlaying, delete_card
from cogs.music.player import Player
from cogs.music.player_protocols import LeaveReason
from cogs.music.progress import ProgressTicker, moving_embed
from cogs.music.queue import TrackQueue
from cogs.music.recovery import RECOVERING, Recovery
from cogs.music.restore import restore_sessions
from cogs.music.settings import MusicSettingsStore
from cogs.music.shares import QueueShares
from cogs.music.sources import Resolver
from cogs.music.store import MusicStore, SaveQueue, Session
from cogs.music.tracks import Track
from cogs.music.visits import Visits
from utils.data_owners import Place
from utils.tasks import log_failure

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
        self._locks: dict[int, asyncio.Lock] = {}
        self._queueing: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kept: set[int] = set()
        """Guilds whose saved queue could not resume after a restart (:meth:`keep_saved`)."""
        self.visits = Visits(self)
        self.saves = SaveQueue(MusicStore(bot.db), self._session)
        self.music_settings = MusicSettingsStore(bot.db, keep=lambda gid: gid in self.players)
        self.access = PlayerAccess(self.players, self.music_settings)
        self.shares = QueueShares(bot.settings, self.music_settings, self.players)
        self.autoplay = Autoplay(resolver)
        self.votes = SkipVotes()
        self.skips = SkipNotices()
        self.recovery = Recovery(self)
        progress = ProgressTicker(
            lambda guild_id: moving_embed(self, guild_id), bot.settings.music_progress_interval
        )
        self.now_playing = NowPlaying(self.players, progress, self._spawn)

    def start(self) -> None:
        """Resume the saved sessions once the bot is ready."""
        self._spawn(restore_sessions(self), "music-restore")

    async def close(self) -> None:
        """Save every session (to resume after a restart), leave voice everywhere, take
        the buttons off the now-playing messages, stop background work."""
        for task in list(self._tasks):
            task.cancel()
        self.now_playing.progress.close()
        guild_ids = list(self.players)
        await self.saves.flush(guild_ids)
        await asyncio.gather(
            self.now_playing.unbutton(guild_ids),  # first: before the teardowns forget them
            *(self.teardown(gid, forget=False) for gid in guild_ids),
        )
        await self.saves.close()

    # Player events (cogs.music.player.Events) --------------------------------

    async def track_started(self, player: Player, track: Track) -> None:
        if not player.repeat:  # a loop's repeat is the same play: the votes against it stand
            self.votes.reset(player.guild_id)
        self.skips.end(player.guild_id)
        self.autoplay.played(player.guild_id, track)
        self.bot.dispatch("music_track_started", player.guild_id, track)  # for /history
        channel = await self._text_channel(player)
        if channel is not None:
            await self.now_playing.post(player, channel, track)

    async def track_failed(self, player: Player, track: Track, reason: str) -> None:
        log.info("skipping %r in guild %s: %s", track.source, player.guild_id, reason)
        if track.autoplay:
            self.autoplay.failed(player.guild_id, track)
        channel = await self._text_channel(player)
        if channel is not None:
            await self.skips.failed(player.guild_id, channel, track.title, reason)

    async def queue_finished(self, player: Player) -> None:
        self.votes.reset(player.guild_id)
        self.skips.end(player.guild_id)
        if await self._autoplay(player):
            return
        await self.say(player, "The queue is finished; add more with `/play`.")
        await self.now_playing.clear(player.guild_id)  # after: the note reopens an archived thread

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
        player.leaving = True
        self._spawn(self.leave(player.guild_id, LEAVE_NOTES[reason], only=player), "music-leave")

    def changed(self, player: Player) -> None:
        self.saves.request(player.guild_id)

    def moved(self, player: Player) -> None:
        self.saves.request(player.guild_id, queue=False)

    async def recover(self, player: Player) -> bool:
        return await self.recovery.recover(player)

    # Players and voice ------------------------------------------------------

    def lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    def queueing(self, guild_id: int) -> asyncio.Lock:
        """Taken by /play from before its resolve to its enqueue, so tracks are queued in
        the order they were asked for; nothing else waits for it (not /stop, not a leave)."""
        return self._queueing.setdefault(guild_id, asyncio.Lock())

    async def abandon(
        self, guild_id: int, joining: asyncio.Task[Player], *, before: Player | None
    ) -> None:
        """/play failed to resolve: leave again if it joined for nothing (its join made a
        new player, not ``before``: the one there when it began)."""
        try:
            player = await joining
        except MusicError:
            return  # the resolve error is the one to report
        async with self.lock(guild_id):
            idle = player.queue.current is None and not len(player.queue)
            if player is not before and idle and self.players.get(guild_id) is player:
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
        leaving = player is not None and player.leaving  # then a new player replaces it
        if player is not None and not leaving and voice is not None and voice.is_connected():
            if voice.channel != channel:
                self.check_move(guild, channel)
                await self.visits.note(guild.id, channel)
                await voice.move_to(channel)
            player.text_channel_id = text_id
            return player
        if player is not None and self.recovery.recovering(player):
            raise MusicError(RECOVERING)
        if player is not None or voice is not None:
            await self.teardown(guild.id, forget=True)
        await self.visits.note(guild.id, channel)
        voice = await connect(channel)
        player = await self.new_player(guild.id, voice, text_id)
        player.start()
        self.update_alone(guild)
        await self.take_the_stage(guild)
        return player

    def check_move(self, guild: discord.Guild, channel: VoiceChannel) -> None:
        """MusicError if the bot plays to people in another channel than ``channel``:
        joining ``channel`` would take it away from them."""
        voice = voice_of(guild)
        if guild.id not in self.players or voice is None or not voice.is_connected():
            return
        if voice.channel != channel and listeners(voice.channel):
            raise MusicError(f"I'm playing in {voice.channel.mention}; join me there.")

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
            open_audio=functools.partial(
                open_audio, proxy=self.resolver.proxy, executable=settings.music_ffmpeg
            ),
            events=self,
            volume=settings.music_default_volume if volume is None else volume,
            idle_timeout=settings.music_idle_timeout,
            alone_timeout=settings.music_alone_timeout,
            text_channel_id=text_id,
        )
        player.stay = rules.stay
        return player

    def skip(self, guild: discord.Guild, member: discord.Member) -> tuple[Track, Vote | None]:
        """Skip for a DJ or whoever asked for the track, else count a vote (more than half
        of the listeners skip); the track and the vote (None: skipped outright)."""
        player = self.access.listening(guild, member)
        track, voice = player.queue.current, voice_of(guild)
        if track is None or not (player.playing or player.loading) or voice is None:
            raise MusicError("Nothing is playing.")
        vote = None
        if not self.access.is_dj(guild, member) and track.requester_id != member.id:
            vote = self.votes.vote(guild.id, member.id, track, listeners(voice.channel))
        if vote is None or vote.passed:
            self.votes.reset(guild.id)  # a loop may play it again: as a new play
            player.skip()
        return track, vote

    async def recount_votes(self, guild: discord.Guild) -> None:
        """Someone left the channel: the votes to skip may now be more than half."""
        player, voice = self.players.get(guild.id), voice_of(guild)
        track = player.queue.current if player else None
        if player is None or voice is None or track is None or not player.playing:
            return
        vote = self.votes.recount(guild.id, track, listeners(voice.channel))
        if vote is not None and vote.passed:
            self.votes.reset(guild.id)  # counted: another leave must not skip again
            player.skip()
            await self.say(player, vote.message(track.title))

    async def take_the_stage(self, guild: discord.Guild) -> None:
        """On a Stage channel, become a speaker, or ask to and say so (:func:`become_speaker`)."""
        player = self.players.get(guild.id)
        if player is not None and (note := await become_speaker(guild.me)):
            await self.say(player, note)

    def update_alone(self, guild: discord.Guild) -> None:
        player, voice = self.players.get(guild.id), voice_of(guild)
        if player is not None and voice is not None:
            alone = not listeners(voice.channel)
            if alone and self.visits.of(guild.id) == voice.channel.id:
                self._spawn(self.visits.go_home(guild), "music-home")
            player.set_alone(alone)

    async def leave(
        self, guild_id: int, note: str | None = None, *, only: Player | None = None
    ) -> None:
        """End a guild's session: stop, disconnect, forget the saved queue, say why, then
        delete the now-playing message (the note reopens a thread archived meanwhile)."""
        async with self.lock(guild_id):
            player = self.players.get(guild_id)
            if only is not None and player is not only:
                return
            card = self.now_playing.drop(guild_id)
            await self.teardown(guild_id, forget=True)
        if note and player is not None:
            await self.say(player, note)
        await delete_card(card, reopen=None if note else STOPPED_NOTE)

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
        self.visits.end(guild_id)
        if forget:
            await self.now_playing.clear(guild_id)
        self.now_playing.drop(guild_id)
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

    async def _text_channel(self, player: Player) -> discord.abc.Messageable | None:
        guild = self.bot.get_guild(player.guild_id)
        if guild is None or player.text_channel_id is None:
            return None
        try:
            return await text_channel(guild, player.text_channel_id)
        except discord.NotFound:  # deleted: not looked up again for each message
            player.text_channel_id = None
            return None

    async def say(self, player: Player, content: str) -> None:
        channel = await self._text_channel(player)
        if channel is not None:
            await send(channel, content)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)
