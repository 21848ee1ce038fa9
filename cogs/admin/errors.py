"""Turning command errors into short messages users can act on."""

from __future__ import annotations

import logging
import math
import re

import discord
from discord import app_commands
from discord.ext import commands

from utils.errors import BotError
from utils.slowmode import holds_bot
from utils.text import ECHO_LIMIT, truncate, wait_words

log = logging.getLogger(__name__)

# On a typed command whose error reply Discord would not take: it failed, or slowmode
# held its own answer (what it did, a prefix set or a track queued, may be done).
FAILED, HELD = "\N{CROSS MARK}", "\N{TURTLE}"

_WRAPPERS = (
    commands.CommandInvokeError,
    commands.HybridCommandError,
    commands.ConversionError,
    app_commands.CommandInvokeError,
)


def unwrap(error: BaseException) -> BaseException:
    """The exception that actually happened, under discord.py's wrappers."""
    while isinstance(error, _WRAPPERS) and getattr(error, "original", None) is not None:
        error = error.original
    return error


# discord.py's words for an argument that is no number (`!queue abc`): the type's name
# is a programmer's, not a user's.
_NOT_A_NUMBER = re.compile(r'Converting to "(int|float)" failed for parameter "(\w+)"\.')


def _perm_names(perms: list[str]) -> str:
    return ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in perms)


def _input_error(error: commands.UserInputError | app_commands.TransformerError) -> str:
    """The error's text, the input it quotes cut to ECHO_LIMIT: discord.py's converters
    quote all of it (`Role "..." not found.`)."""
    text = str(error)
    if match := _NOT_A_NUMBER.fullmatch(text):
        return f"`{match[2]}` must be a {'whole number' if match[1] == 'int' else 'number'}."
    argument = getattr(error, "argument", None)
    if isinstance(argument, str) and len(argument) > ECHO_LIMIT:
        text = text.replace(argument, truncate(argument, ECHO_LIMIT))
    return text or "That input is not valid."


def user_message(error: BaseException) -> str | None:
    """A short reply for a user error, or None when the error is a bug to log."""
    match error:
        case BotError():
            return str(error)
        case commands.NotOwner():
            return "This command is for the bot owner."
        case commands.MissingPermissions() | app_commands.MissingPermissions():
            return f"You need the {_perm_names(error.missing_permissions)} permission to do that."
        case commands.BotMissingPermissions() | app_commands.BotMissingPermissions():
            return f"I need the {_perm_names(error.missing_permissions)} permission to do that."
        case commands.NoPrivateMessage() | app_commands.NoPrivateMessage():
            return "This command only works in a server."
        case commands.CommandOnCooldown() | app_commands.CommandOnCooldown():
            return f"Slow down: try again in {math.ceil(error.retry_after)} s."
        case commands.MissingRequiredArgument():
            return f"Missing `{error.param.name}`."
        case commands.TooManyArguments():
            return "Too many arguments."
        case commands.BadLiteralArgument():
            return f"`{error.param.name}` must be one of: {', '.join(map(str, error.literals))}."
        # A number typed out of the range a command declares (its slash form: Discord stops it).
        case commands.RangeError(
            value=float() | int(), minimum=float() | int() as low, maximum=float() | int() as high
        ):
            return f"Pick a number from {low:g} to {high:g}."
        case commands.UserInputError() | app_commands.TransformerError():
            return _input_error(error)
        case commands.CheckFailure() | app_commands.CheckFailure():
            return "You can't use this command here."
        case commands.DisabledCommand():
            return "This command is disabled."
        # Discord still has a command the bot no longer has, or an older form of it (other
        # options, a command now a group) until the next sync.
        case app_commands.CommandNotFound() | app_commands.CommandSignatureMismatch():
            return "That command isn't available right now."
        case discord.RateLimited():  # Discord asked for a longer wait than the bot waits
            return (
                "Discord is limiting how often that can be done; "
                f"try again in {wait_words(error.retry_after)}."
            )
        case discord.Forbidden():
            return "I'm missing a permission for that here."
        # Discord's codes for a message's text or a thread's title the server's AutoMod blocks.
        case discord.HTTPException(code=200000 | 200001):
            return "This server's AutoMod blocked what I was about to post."
    return None


async def mark_unanswered(message: discord.Message, error: BaseException) -> None:
    """Mark a typed command whose error reply Discord refused or held: a long slowmode
    holds the bot's messages, not its reactions (which need Add Reactions)."""
    held = isinstance(error, discord.RateLimited) and holds_bot(message.channel)
    try:
        await message.add_reaction(HELD if held else FAILED)
    except (discord.HTTPException, discord.RateLimited) as refused:
        log.info("could not mark message %s unanswered either: %s", message.id, refused)
