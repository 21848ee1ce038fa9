"""What the bot's cache keeps of the gateway across sessions.

A shard whose session could not RESUME (Discord's op 9, or a session that expired
while the connection was down) IDENTIFYs again and gets a fresh READY listing every
guild the bot is in now, those in an outage included, then each guild anew. discord.py's
sharded cache falls short twice there:

- it adds READY's guilds but never drops the others, so a guild that removed the bot
  in between stayed in `bot.guilds` for the rest of the run, its GUILD_DELETE lost with
  the old session: the bot never left it (music) and its data was never deleted
  (retention asks the cache whether the bot is still in it);
- a voice connection kept the channel object of the guild as it was before, whose
  members no longer change: music counted listeners who had left, and never left
  an empty channel.
"""

from __future__ import annotations

from typing import Any

import discord
from discord.state import AutoShardedConnectionState


class ShardedState(AutoShardedConnectionState):
    """The sharded cache, kept right across a shard's new sessions (see above)."""

    def parse_ready(self, data: Any) -> None:
        shard_id = data["shard"][0]
        listed = {int(guild["id"]) for guild in data["guilds"]}
        gone = [
            guild.id
            for guild in self.guilds
            if guild.shard_id == shard_id and guild.id not in listed
        ]
        super().parse_ready(data)
        for guild_id in gone:  # as if the lost GUILD_DELETE had come (on_guild_remove)
            self.parse_guild_delete({"id": str(guild_id)})  # pyright: ignore[reportArgumentType]

    def parse_guild_create(self, data: Any) -> None:
        super().parse_guild_create(data)
        guild = self._get_guild(int(data["id"]))
        voice = self._get_voice_client(int(data["id"]))
        if guild is None or not isinstance(voice, discord.VoiceClient):
            return
        if voice.channel.guild is not guild:  # the guild was made anew
            channel = guild.get_channel(voice.channel.id)
            if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                voice.channel = channel
