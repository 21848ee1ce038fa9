"""Errors whose messages are safe to show to users; everything else is a bug."""

from __future__ import annotations

SORRY = "Something went wrong on my side; try again in a moment."  # what a bug shows


class BotError(Exception):
    """Base for errors the global handler shows to the user as they are."""
