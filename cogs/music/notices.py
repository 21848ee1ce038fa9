"""Music notices: why the bot left voice on its own (:data:`LEAVE_NOTES`), and skip
notices: tracks that fail one after another (a playlist of deleted or private videos)
share one message, edited as each fails, instead of one message each.

A run ends when a track starts, the queue ends or the player stops; the next failure
then posts a new notice.  Each failure still gets its own log line (the sessions').
"""

from __future__ import annotations

import logging

import discord

from cogs.music.player_protocols import LeaveReason
from cogs.music.views import clean

log = logging.getLogger(__name__)

_NO_PINGS = discord.AllowedMentions.none()

LEAVE_NOTES = {
    LeaveReason.IDLE: "Nothing is playing, so I left the voice channel.",
    LeaveReason.ALONE: "Nobody is listening any more, so I left the voice channel.",
    LeaveReason.LOST: "I was disconnected from the voice channel, so I stopped the music.",
    LeaveReason.DROPPED: "I lost the voice connection and couldn't get it back, so I left.",
}
STOPPED_NOTE = "⏹️ The music was stopped and the queue cleared."
"""Posted in the thread of a card left by /stop, /leave or the AI from elsewhere, if it was
archived: the note reopens it, so the card (with its dead buttons) can be deleted."""


class SkipNotices:
    """Each guild's notice of its current run of failed tracks, and its count."""

    def __init__(self) -> None:
        self._runs: dict[int, tuple[discord.Message, int]] = {}
        """One entry per guild with a player (ended with it: :meth:`end`)."""

    async def failed(
        self, guild_id: int, channel: discord.abc.Messageable, title: str, reason: str
    ) -> None:
        """Tell the channel a track was skipped: a new notice, or the run's one edited."""
        last = f"{clean(title)}: {reason}"
        run = self._runs.get(guild_id)
        if run is not None:
            message, count = run
            content = f"⚠️ Skipped {count + 1} tracks I couldn't play; the last was {last}"
            try:
                await message.edit(content=content, allowed_mentions=_NO_PINGS)
            except (discord.HTTPException, discord.RateLimited) as error:  # deleted: post anew
                log.debug("could not update the skip notice: %s", error)
            else:
                self._runs[guild_id] = (message, count + 1)
                return
        try:
            message = await channel.send(f"⚠️ Skipped {last}", allowed_mentions=_NO_PINGS)
        except (discord.HTTPException, discord.RateLimited) as error:  # a long slowmode...
            log.warning("could not send a music message: %s", error)
            self._runs.pop(guild_id, None)
            return
        self._runs[guild_id] = (message, 1)

    def end(self, guild_id: int) -> None:
        """End the guild's run: its next failure gets a notice of its own."""
        self._runs.pop(guild_id, None)
