"""Shared services used by the bot and every cog."""
