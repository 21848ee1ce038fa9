"""The music error: its message is safe to show users as it is."""

from __future__ import annotations

from utils.errors import BotError


class MusicError(BotError):
    """A music request that cannot be done (bad link, full queue, not in voice...)."""


class VoiceUnreachable(MusicError):
    """Joining a voice channel failed or timed out: worth trying again later."""


class CannotJoin(MusicError):
    """The bot may not join a voice channel now (a permission is missing, it is full)."""
