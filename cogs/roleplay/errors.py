"""The roleplay error: its message is safe to show users as it is."""

from __future__ import annotations

from utils.errors import BotError


class RoleplayError(BotError):
    """A roleplay request that cannot be done (bad card, name taken, server full...)."""
