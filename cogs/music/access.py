"""Who may use a guild's player: the people in its voice channel, and for the DJ-only
controls (pause, stop, seek, queue edits, volume, filters) only the DJs.

:class:`PlayerAccess` answers every command and button with the player or a short
:class:`~cogs.music.errors.MusicError` saying why not; the DJ rule itself (a DJ role or
Manage Channels) is :mod:`cogs.music.control`'s.  It reads the
sessions' players and the server's cached music settings, and writes nothing.
"""

from __future__ import annotations

import discord

from cogs.music.channels import voice_of
from cogs.music.control import dj_refusal, is_dj
from cogs.music.errors import MusicError
from cogs.music.player import Player
from cogs.music.settings import MusicSettings, MusicSettingsStore


class PlayerAccess:
    """The checks before a member uses a guild's player (see the module docstring)."""

    def __init__(self, players: dict[int, Player], music_settings: MusicSettingsStore) -> None:
        self._players = players
        self.music_settings = music_settings

    def listening(self, guild: discord.Guild, member: discord.Member) -> Player:
        """The player, if ``member`` is in its voice channel (every control needs that)."""
        player, voice = self._players.get(guild.id), voice_of(guild)
        if player is None or voice is None:
            raise MusicError("I'm not playing anything right now.")
        if member.voice is None or member.voice.channel != voice.channel:
            raise MusicError(f"Join {voice.channel.mention} to control the music.")
        return player

    def controlled(self, guild: discord.Guild, member: discord.Member) -> Player:
        """The player, if ``member`` is in its voice channel and may use the DJ-only
        controls (:func:`~cogs.music.control.is_dj`)."""
        player = self.listening(guild, member)
        if not self.is_dj(guild, member):
            raise MusicError(dj_refusal(guild, self.music_settings.cached(guild.id)))
        return player

    def is_dj(self, guild: discord.Guild, member: discord.Member) -> bool:
        rules = self.music_settings.cached(guild.id) or MusicSettings(guild.id)
        return (voice := voice_of(guild)) is not None and is_dj(member, voice.channel, rules)
