"""Directors: features that take over how the AI answers in some channels.

A roleplay scene, say, has the AI answer every message of its channel, in its own
voice (the scene's system instruction) and through its own messages (character
webhooks). The feature implements `Director` and registers it in the Bot's
`Directors` in `cog_load`; the AI cog asks the registry whether a channel is
directed (for every message, so `directs` must be cheap) and, before answering a
message there, for the `Direction` of that reply (`directed`: a director that fails
on Discord or the network is a short notice to the asker, not silence).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp
import discord
from discord.ext import commands

from cogs.ai.replies import SORRY, ContextSink, say_why
from cogs.ai.streaming import Sink, Splitter
from utils.errors import BotError

if TYPE_CHECKING:
    from bot import Bot  # noqa: F401 (named in the Context alias)

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]


@dataclass(frozen=True)
class Direction:
    """How to answer one message in a directed channel (no tools are offered)."""

    system: str  # the system instruction, instead of the persona or channel prompt
    sink: Sink  # where the reply's messages go
    splitter: Splitter  # how the streamed text becomes messages for `sink`
    after: Callable[[str], Awaitable[None]]  # given the reply's text once shown whole; quick


class Director(Protocol):
    def directs(self, channel_id: int) -> bool:
        """Whether every message in this channel is answered under direction (cheap)."""
        ...

    async def direction(self, ctx: Context) -> Direction | None:
        """The direction for answering `ctx.message`; None: do not answer it."""
        ...


class Directors:
    """The registered directors (owned by the Bot)."""

    def __init__(self) -> None:
        self._directors: list[Director] = []

    def register(self, director: Director) -> None:
        self._directors.append(director)

    def unregister(self, director: Director) -> None:
        if director in self._directors:
            self._directors.remove(director)

    def of(self, channel_id: int) -> Director | None:
        """The director of a channel, if any."""
        return next((d for d in self._directors if d.directs(channel_id)), None)


async def directed(director: Director, ctx: Context, sink: ContextSink) -> Direction | None:
    """How to answer a message in a directed channel; None: it gets no answer (a failure
    is told to the asker, `sink`: a refusal, or the database or Discord failing)."""
    try:
        return await director.direction(ctx)
    except BotError as error:
        await say_why(sink, str(error))
    except (discord.HTTPException, aiohttp.ClientError, OSError) as error:  # timeouts too
        log.warning("could not direct the reply in channel %s: %r", ctx.channel.id, error)
        await say_why(sink, SORRY)
    return None
