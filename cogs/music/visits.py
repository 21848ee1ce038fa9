"""24/7 and its visits: `/247` sets the channel the bot stays in; a /play from another
voice channel takes the bot there for a visit, not to a new 24/7 channel; once nobody
listens there any more it goes back home.

:class:`Visits` turns 24/7 on and off (:meth:`Visits.set_stay`) and owns which channel
each guild is visiting: noted when the sessions join for a /play, ended when the
session ends, 24/7 changes or a moderator moves the bot
(:class:`~cogs.music.modes.MusicModes`), and when it goes home.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from cogs.music.channels import CONNECT_TIMEOUT, VoiceChannel, check_can_join, listeners, voice_of
from cogs.music.errors import MusicError

if TYPE_CHECKING:
    from cogs.music.sessions import Sessions

log = logging.getLogger(__name__)


class Visits:
    """Each guild's visit away from its 24/7 channel (see the module docstring)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self._channels: dict[int, int] = {}

    def of(self, guild_id: int) -> int | None:
        """The voice channel the guild is visiting, if any."""
        return self._channels.get(guild_id)

    def end(self, guild_id: int) -> None:
        self._channels.pop(guild_id, None)

    async def set_stay(
        self, guild: discord.Guild, channel: VoiceChannel | None, text_id: int
    ) -> None:
        """24/7 on in ``channel`` (joining it), or off with None. Under the guild's lock,
        as a restore after a restart makes its player: it reads the setting there."""
        sessions = self.sessions
        async with sessions.lock(guild.id):
            if channel is not None:
                await sessions.join(guild, channel, text_id)
            await sessions.music_settings.update(
                guild.id,
                stay=channel is not None,
                stay_channel_id=channel.id if channel else None,
                stay_text_channel_id=text_id if channel else None,
            )
            self.end(guild.id)  # the new 24/7 channel, or no more 24/7
            player = sessions.players.get(guild.id)
            if player is not None:
                player.stay = channel is not None
                sessions.update_alone(guild)

    async def note(self, guild_id: int, channel: VoiceChannel) -> None:
        """Before joining ``channel`` for a /play: note it if it is not the 24/7 one."""
        rules = await self.sessions.music_settings.get(guild_id)
        if rules.stay and rules.stay_channel_id not in (None, channel.id):
            self._channels[guild_id] = channel.id
        else:
            self._channels.pop(guild_id, None)

    async def go_home(self, guild: discord.Guild) -> None:
        """Back to the 24/7 channel from a visit nobody listens to any more."""
        sessions = self.sessions
        rules = await sessions.music_settings.get(guild.id)
        home = guild.get_channel(rules.stay_channel_id) if rules.stay_channel_id else None
        async with sessions.lock(guild.id):
            voice = voice_of(guild)
            if voice is None or self._channels.get(guild.id) != voice.channel.id:
                return  # moved, left or back already
            if listeners(voice.channel):
                return  # someone came back meanwhile: the visit goes on
            del self._channels[guild.id]
            if rules.stay and isinstance(home, VoiceChannel):
                try:
                    check_can_join(home)
                    await voice.move_to(home, timeout=CONNECT_TIMEOUT)
                except (MusicError, TimeoutError) as error:
                    log.warning(
                        "could not go back to the 24/7 channel in guild %s: %s", guild.id, error
                    )
            elif (player := sessions.players.get(guild.id)) is not None:
                player.stay = False  # 24/7 is off, or its channel is gone: the alone timer decides
        sessions.update_alone(guild)
