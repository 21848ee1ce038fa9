"""Voice that recovers: a dropped voice connection is joined again and the track goes
on from where it was; a moderator's disconnect still stops the music.

What discord.py 2.7 does by itself, and what is left to us:

- a voice server change (VOICE_SERVER_UPDATE; the old socket closes with 4014):
  it connects to the new server and its audio thread goes on.  Nothing to do but
  wait :data:`DROP_GRACE`.
- 4015 (voice server crashed): it tries to resume, but its handshake waits for
  voice events that never come in that state; it gives up after the connect
  timeout (15 s) and leaves, while its audio thread waits in silence.
- 4006 (session no longer valid), other codes, a lost network: it leaves and
  joins again, retrying without end; its audio thread gives up on the track,
  which would end as if it had played through.

So the player watches its connection (:mod:`cogs.music.voice_watch`) and, when a track
stopped on a dropped connection, :class:`Recovery` closes the connection (its
retries stopped, see :class:`~cogs.music.channels.MusicVoice`) and joins again, up
to MUSIC_VOICE_RECONNECTS tries; then the player plays the track on from its
position.  Past the tries, the bot leaves with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from cogs.music.channels import MusicVoice, connect, voice_of, voice_problem
from cogs.music.errors import MusicError
from cogs.music.player import Player
from cogs.music.player_protocols import LeaveReason

if TYPE_CHECKING:
    from cogs.music.sessions import Sessions

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0
"""Seconds between tries to join again."""
HANG_UP_TIMEOUT = 5.0
"""Seconds to wait for a broken connection to close before joining anew."""
RECOVERING = "I lost the voice connection for a moment; try again in a few seconds."


class Recovery:
    """Joins a dropped connection again for :class:`~cogs.music.sessions.Sessions`, and
    says at start when voice cannot work at all (the music cog still loads; joining
    then answers that voice is unavailable)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        if problem := voice_problem():
            log.error("music cannot play: voice does not work here: %s", problem)

    async def recover(self, player: Player) -> bool:
        """Bring the player's voice connection back (``player.voice`` is replaced);
        False when it cannot: then a leave with a message is under way, or, after a
        moderator's disconnect, that disconnect's own leave."""
        sessions, old = self.sessions, player.voice
        guild = sessions.bot.get_guild(player.guild_id)
        if not isinstance(old, MusicVoice) or old.kicked or guild is None:
            return False
        for attempt in range(1, sessions.settings.music_voice_reconnects + 1):
            if attempt > 1:
                await asyncio.sleep(RETRY_PAUSE)
            async with sessions.lock(guild.id):  # /play must not join meanwhile
                if old.kicked or sessions.players.get(guild.id) is not player:
                    return False
                if old.is_connected():
                    return True
                if await self._rejoin(guild, player, old, attempt):
                    return True
        log.warning("voice connection of guild %s did not come back; leaving", guild.id)
        sessions.request_leave(player, LeaveReason.DROPPED)
        return False

    async def _rejoin(
        self, guild: discord.Guild, player: Player, old: MusicVoice, attempt: int
    ) -> bool:
        log.info("rejoining voice in guild %s (try %d)", guild.id, attempt)
        if voice_of(guild) is old:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANG_UP_TIMEOUT):
                    await old.disconnect(force=True)
        wait = self.sessions.settings.music_voice_reconnect_wait
        try:
            player.voice = await connect(old.channel, within=wait)
        except MusicError:
            return False
        self.sessions.update_alone(guild)
        return True

    def recovering(self, player: Player) -> bool:
        """Whether the player's connection dropped under a track, which the player is
        bringing back (or soon will): joining anew meanwhile would throw its queue away.
        An idle player recovers when its next track starts."""
        voice = player.voice
        return (
            player.running
            and player.queue.current is not None
            and isinstance(voice, MusicVoice)
            and not voice.kicked
            and not voice.is_connected()
        )

    def voice_left(self, player: Player) -> None:
        """The bot's voice state left its channel: a moderator's disconnect stops the
        music; discord.py's own reconnects leave and join again (the player recovers)."""
        if isinstance(player.voice, MusicVoice) and player.voice.kicked:
            self.sessions.request_leave(player, LeaveReason.LOST)
