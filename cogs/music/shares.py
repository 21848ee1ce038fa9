"""Room in the queue: how many tracks a /play (or a saved playlist) may add now.

:class:`QueueShares` answers with the smallest of the queue's free room
(MUSIC_QUEUE_LIMIT), a playlist's worth (MUSIC_PLAYLIST_LIMIT) and what is left of
the member's share (MUSIC_MAX_QUEUED_PER_MEMBER, unless the server's rules exempt
them: :func:`~cogs.music.control.unlimited`), so one person cannot fill the queue.
It only reads the players and the settings; the room it gives is a
:class:`~cogs.music.views.Room` saying which limit cut a playlist short.
"""

from __future__ import annotations

import discord

from cogs.music.channels import VoiceChannel
from cogs.music.control import unlimited
from cogs.music.errors import MusicError
from cogs.music.player import Player
from cogs.music.settings import MusicSettingsStore
from cogs.music.views import Cut, Room
from config import Settings
from utils.text import counted


class QueueShares:
    """The queue room of each member (see the module docstring)."""

    def __init__(
        self, settings: Settings, music_settings: MusicSettingsStore, players: dict[int, Player]
    ) -> None:
        self.settings = settings
        self.music_settings = music_settings
        self._players = players

    async def cap(
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
        playlist's worth, and what is left of their ``share`` (:meth:`cap`);
        MusicError when none."""
        player = self._players.get(guild_id)
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
