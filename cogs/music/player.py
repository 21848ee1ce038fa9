"""The per-guild player: plays the queue's tracks one after another on a voice connection.

One task per guild walks the queue: resolve the next track, open its audio,
play it, wait for the end, apply the loop mode, repeat.  With nothing left it
waits for new tracks and asks to leave after the idle timeout.  A track that
fails to resolve or play is reported and dropped; nothing stalls the loop.

Discord is reached only through the small protocols of
:mod:`cogs.music.player_protocols` (the voice client, the audio source, the cog's
event handlers), so the player runs in unit tests with fakes; a track's stream and
audio are loaded by :mod:`cogs.music.loading`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Awaitable, Iterable

from cogs.music.errors import MusicError
from cogs.music.filters import AudioFilter, Sound, checked_volume
from cogs.music.loading import Loader
from cogs.music.player_protocols import Audio, Events, LeaveReason, OpenAudio, Streams, Voice
from cogs.music.queue import TrackQueue
from cogs.music.tracks import LoopMode, Track, cut_short, played_out
from cogs.music.voice_watch import watch_voice

log = logging.getLogger(__name__)


class Player:
    """Playback state for one guild: the queue, volume, pause, timers and the play loop.

    Others read :attr:`queue` but change it only through the player's methods, which
    save every change (through :meth:`Events.changed`).
    """

    def __init__(
        self,
        guild_id: int,
        voice: Voice,
        queue: TrackQueue,
        *,
        streams: Streams,
        open_audio: OpenAudio,
        events: Events,
        volume: int = 100,
        idle_timeout: float = 300.0,
        alone_timeout: float = 60.0,
        text_channel_id: int | None = None,
    ) -> None:
        self.guild_id = guild_id
        self.voice = voice
        self.queue = queue
        self.loader = Loader(streams, open_audio)
        self.events = events
        self.volume = volume
        self.idle_timeout = idle_timeout
        self.alone_timeout = alone_timeout
        self.text_channel_id = text_channel_id
        self.filter: AudioFilter | None = None
        self.stay = False  # 24/7 (Sessions sets it): neither the idle nor the alone timer leaves
        self.leaving = False  # asked to leave (Sessions sets it): a /play needs a new player
        self.paused = False
        self.play_id: str | None = None
        """Which play of a track this is (new as each one starts loading; None between
        tracks): the now-playing buttons carry it, so those of an earlier track do nothing."""
        self._audio: Audio | None = None
        self._start_at = 0.0
        self._skip = False
        self._resume_dropped = False
        self._played_any = False
        self.repeat = False
        """The track about to play (or playing) just played through: a loop's repeat, one play."""
        self._error: Exception | None = None
        self._done = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reopening = asyncio.Lock()
        self._alone_timer: asyncio.Task[None] | None = None

    # State ------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        """A track's audio is open (playing or paused)."""
        return self._audio is not None

    @property
    def loading(self) -> bool:
        """The current track is loading (its stream resolved, its audio opened); it plays next."""
        return self.loader.busy

    @property
    def position(self) -> float:
        """Seconds into the current track."""
        return self._audio.position if self._audio is not None else self._start_at

    @property
    def sound(self) -> Sound:
        return Sound(self.volume / 100, self.filter)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # Lifecycle --------------------------------------------------------------

    def start(self, *, position: float = 0.0, paused: bool = False) -> None:
        """Start the play loop; a restored current track plays from ``position``."""
        if self._task is not None:
            raise RuntimeError("the player was started already")
        self._start_at = position
        self.paused = paused
        resume = self.queue.current is not None
        self._task = asyncio.create_task(self._run(resume), name=f"music-{self.guild_id}")

    async def close(self) -> None:
        """Stop playback, the loop and the timers (the voice connection is the caller's)."""
        tasks = [t for t in (self._task, self._alone_timer) if t is not None]
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.voice.stop()
        if others := {task for task in tasks if task is not asyncio.current_task()}:
            await asyncio.wait(others)  # the caller's own cancellation still reaches it

    # Queue edits: each one is saved -----------------------------------------

    def add(self, tracks: Iterable[Track]) -> int:
        """Queue tracks (up to the limit); returns how many. MusicError when full."""
        added = self.queue.add(tracks)
        self._wake.set()
        self._changed()
        return added

    def remove(self, position: int) -> Track:
        track = self.queue.remove(position)
        self._changed()
        return track

    def move(self, source: int, destination: int) -> Track:
        track = self.queue.move(source, destination)
        self._changed()
        return track

    def shuffle(self) -> int:
        """Shuffle the upcoming tracks; returns how many."""
        self.queue.shuffle()
        self._changed()
        return len(self.queue)

    def clear(self) -> int:
        """Drop the upcoming tracks; returns how many."""
        count = self.queue.clear()
        self._changed()
        return count

    def set_loop(self, mode: LoopMode | None = None) -> LoopMode:
        """Set the loop mode, or cycle to the next one."""
        self.queue.loop = mode or self.queue.loop.next()
        self._changed()
        return self.queue.loop

    # Controls ---------------------------------------------------------------

    def skip(self) -> Track:
        track = self._require_playing()
        self._skip = True
        self.paused = False
        self.voice.stop()
        self.loader.cancel()
        return track

    def pause(self) -> Track:
        track = self._require_playing()
        if self.paused:
            raise MusicError("The music is already paused.")
        self.voice.pause()
        self.paused = True
        self._changed()
        return track

    def resume(self) -> Track:
        track = self._require_playing()
        if not self.paused:
            raise MusicError("The music isn't paused.")
        self.voice.resume()
        self.paused = False
        self._changed()
        return track

    async def set_volume(self, percent: int) -> None:
        self.volume = checked_volume(percent)
        await self._reopen()
        self._changed()

    async def set_filter(self, audio_filter: AudioFilter | None) -> None:
        """Use a filter (None: none) from the current position on, and for the next tracks."""
        self.filter = audio_filter
        await self._reopen()
        self._changed()

    async def seek(self, position: float) -> Track:
        """Go to ``position`` s (the caller checks the track is that long); paused stays
        paused, and a track still loading opens there."""
        track = self._require_playing()
        await self._reopen(max(0.0, position))
        self._changed()
        return track

    async def _reopen(self, start: float | None = None) -> None:
        """Re-open the audio at ``start`` (None: where it is) with the sound as it is then.
        One at a time: of two quick changes, the later one's FFmpeg must take over last.
        A track still loading opens with them (:meth:`Loader.open`)."""
        async with self._reopening:
            if self._audio is not None:
                at = self.position if start is None else start
                await asyncio.to_thread(self._audio.restart, at, self.sound)
            elif start is not None:
                self._start_at = start

    def set_alone(self, alone: bool) -> None:
        """Start (or cancel) the countdown to leave a channel nobody listens in."""
        if not alone or self.stay:
            if self._alone_timer is not None:
                self._alone_timer.cancel()
                self._alone_timer = None
            return
        if self._alone_timer is None or self._alone_timer.done():
            self._alone_timer = asyncio.create_task(
                self._leave_when_alone(), name=f"music-alone-{self.guild_id}"
            )

    # The loop ---------------------------------------------------------------

    async def _run(self, resume: bool) -> None:
        while True:
            try:
                track = self.queue.current if resume else self._advance()
                resume = False
                if track is None:
                    if not await self._wait_for_tracks():
                        return
                elif not await self._play(track):
                    return
            except Exception:  # a bug must not stop the music: log it, go on with the next
                log.exception("music player of guild %s failed; dropping the track", self.guild_id)
                self.queue.current = None

    def _advance(self) -> Track | None:
        if self._resume_dropped:  # stopped mid-track (a drop, a dead URL): go on there
            return self.queue.current
        skipped, self._skip = self._skip, False
        finished = self.queue.current
        track = self.queue.advance(skipped=skipped)
        self.repeat = track is not None and track is finished
        return track

    async def _wait_for_tracks(self) -> bool:
        """Wait for new tracks; False when the idle timeout ran out."""
        self.paused = False
        self.play_id = None
        self._changed()
        if self._played_any:
            self._played_any = False
            await self._emit(self.events.queue_finished(self))
        self._wake.clear()
        if len(self.queue):
            return True
        try:
            async with asyncio.timeout(self.idle_timeout):
                await self._wake.wait()
        except TimeoutError:
            if self.stay:  # 24/7: wait another round (turned off meanwhile: leave after it)
                return True
            self.events.request_leave(self, LeaveReason.IDLE)
            return False
        return True

    async def _play(self, track: Track) -> bool:
        """Play one track to its end; False when the voice connection is gone."""
        resumed, self._resume_dropped = self._resume_dropped, False
        if not resumed and (not self.repeat or self.play_id is None):  # a repeat: one play
            self.play_id = secrets.token_hex(4)  # from its load on: buttons shown then act
        try:
            audio = await self._open(track)
        finally:
            self._start_at = 0.0
        if audio is None:
            if not self._skip:  # it failed; a skipped one stays current for the loop mode
                self.queue.current = None
            self._played_any = True  # its turn came: the end of the queue is announced
            return True
        if not self.voice.is_connected() and not await self.events.recover(self):
            audio.cleanup()
            return False
        self._done.clear()
        self._error = None
        self._audio = audio
        moved = functools.partial(self._changed, queue=False)  # saves its position alone
        watch = asyncio.create_task(watch_voice(lambda: self.voice, self._dropped, moved))
        try:
            self.voice.play(audio, after=functools.partial(self._after, audio))
            if self.paused:
                self.voice.pause()
            self._played_any = True
            self._changed()
            if not resumed:  # after a drop the track goes on: no new announcement
                await self._emit(self.events.track_started(self, track))
            await self._done.wait()
        finally:
            watch.cancel()
            self._audio = None
            audio.cleanup()
        if not self._skip and not self.voice.is_connected():
            return await self._resume_after_drop(audio)
        await self._check_played(track, audio, resumed)
        return True

    def _dropped(self) -> None:
        log.info("voice connection of guild %s is down; recovering", self.guild_id)
        self.voice.stop()
        self._done.set()  # its audio thread ends only once it stops waiting to reconnect

    async def _resume_after_drop(self, audio: Audio) -> bool:
        """The voice connection dropped mid-track: reconnect, then play the track on
        from where it stopped; False when the connection did not come back."""
        self._start_at = audio.position
        self._changed()
        self._resume_dropped = await self.events.recover(self)
        return self._resume_dropped

    async def _open(self, track: Track) -> Audio | None:
        """The track's audio; None when it failed (reported) or was skipped while it loaded."""
        try:
            return await self.loader.open(  # where it is (a seek moves it) and how it sounds
                track, lambda: self._start_at, lambda: self.sound, lambda: self._skip
            )
        except MusicError as error:  # how sources and FFmpeg report what can go wrong
            await self._emit(self.events.track_failed(self, track, str(error)))
            return None

    async def _check_played(self, track: Track, audio: Audio, resumed: bool) -> None:
        """Report a track that played nothing (dead link, not media) or broke off.  One that
        ended short of its end, or played nothing from a kept (expired) link, goes on anew."""
        went_on = resumed and not audio.frames and not self.loader.renewed  # from where it was
        if self._skip or (went_on and (not self.loader.kept or played_out(track, audio.position))):
            return  # it had ended there after all (a kept link, maybe expired, is renewed)
        if (audio.frames and self._error is None) or self.loader.renew(track, audio.frames):
            if not audio.frames or cut_short(track, audio.position):
                self._start_at, self._resume_dropped, track.stream = audio.position, True, None
            return
        reason = "the stream broke off." if audio.frames else "the stream couldn't be read."
        if self._error is not None:
            log.warning("playback of %r failed: %s", track.source, self._error)
        self.queue.current = None
        await self._emit(self.events.track_failed(self, track, reason))

    def _after(self, audio: Audio, error: Exception | None) -> None:
        """Called by the voice client's audio thread when a track ends."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._done_loop().call_soon_threadsafe(self._finish, audio, error)

    def _done_loop(self) -> asyncio.AbstractEventLoop:
        assert self._task is not None
        return self._task.get_loop()

    def _finish(self, audio: Audio, error: Exception | None) -> None:
        if audio is not self._audio:
            return  # a track given up on after a dropped connection; a later one plays
        self._error = error
        self._done.set()

    async def _leave_when_alone(self) -> None:
        await asyncio.sleep(self.alone_timeout)
        self.events.request_leave(self, LeaveReason.ALONE)

    # Helpers ----------------------------------------------------------------

    def _require_playing(self) -> Track:
        if self.queue.current is None or (self._audio is None and not self.loading):
            raise MusicError("Nothing is playing.")
        return self.queue.current

    def _changed(self, *, queue: bool = True) -> None:
        try:
            (self.events.changed if queue else self.events.moved)(self)
        except Exception:  # the cog's handler; whatever it raises must not stop playback
            log.exception("music: saving the state of guild %s failed", self.guild_id)

    async def _emit(self, event: Awaitable[None]) -> None:
        try:
            await event
        except Exception:  # the cog's handler; whatever it raises must not stop playback
            log.exception("music: an event handler failed in guild %s", self.guild_id)
