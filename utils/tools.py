"""What the AI can do: tool definitions and the registry the cogs fill.

A cog that offers the AI something to do registers its tools here in `cog_load`
(music its player controls, memory remember/recall/forget, the AI cog server and
web tools) and removes them in `cog_unload`; the AI cog offers the registered tools
on each reply and runs the calls (`cogs.ai.tools.toolbox`). A tool runs for one
person, the `Asker` whose message started the reply: the permissions it names are checked
against that person (and the bot) when it runs, never the bot's alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

import discord
from google.genai import types
from pydantic import BaseModel

from utils.errors import BotError
from utils.text import wait_words, without_previews


class Family(StrEnum):
    """Groups of tools a server turns on or off together (`/ai tools`)."""

    MUSIC = "music"
    MEMORY = "memory"
    INFO = "info"  # reading about the server: always on while tools are
    SERVER = "server"  # changing the server: off until a server turns it on
    SEARCH = "search"
    LINKS = "links"


DEFAULT_FAMILIES = frozenset(Family) - {Family.SERVER}
SWITCHABLE = (Family.MUSIC, Family.MEMORY, Family.SERVER, Family.SEARCH, Family.LINKS)


class ToolRefused(BotError):
    """A tool will not do what was asked; the message says why (the model tells the user)."""


@dataclass(frozen=True)
class Asker:
    """The person whose message started the reply, and where they wrote it."""

    user: discord.Member | discord.User
    channel: discord.abc.MessageableChannel
    guild: discord.Guild | None  # None in DMs (and in servers the bot is not in)
    message: discord.Message | None  # None for `/chat`
    text: str = ""  # what they wrote to the bot: the message's words, or `/chat`'s prompt

    def member(self) -> discord.Member:
        """The asker as a member of a server the bot is in (for server-only tools)."""
        if self.guild is None or not isinstance(self.user, discord.Member):
            raise ToolRefused("That only works in a server the bot is in.")
        return self.user


@dataclass(frozen=True)
class Source:
    """A web page an answer drew on (shown as a link under the reply)."""

    title: str
    uri: str


@dataclass
class Done:
    """What a tool did: `result` goes back to the model; `note` is the few words shown
    under the reply ("🎵 queued *Song*"); `outside` marks text others wrote (web pages,
    memories, titles, names), after which the reply may no longer change anything;
    `forgets_exchange`: the asker had all about them forgotten, so the exchange that asked
    is not remembered either."""

    result: dict[str, Any]
    note: str | None = None
    outside: bool = False
    sources: list[Source] = field(default_factory=list)
    forgets_exchange: bool = False


def shown(name: str) -> str:
    """A name or title others chose, safe in a `Done.note`: on one line (a line break
    would end the small print), no markdown, no pings (pass a role's name with its @:
    "@" + "here" is a ping), and a web address in it in <...>, so it does not unfurl
    into an embed under the reply. Cut it short before, not after: a cut could drop
    the closing >."""
    one_line = " ".join(name.split())
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(one_line))
    return without_previews(escaped)


P = TypeVar("P", bound=BaseModel)


class NoArguments(BaseModel):
    pass


@dataclass(frozen=True)
class Tool(Generic[P]):
    """One thing the AI can do.

    `params` is a pydantic model: its JSON schema is what the model is told, and a
    call's arguments are validated with it before `run`. `asker_permissions` and
    `bot_permissions` are `discord.Permissions` attribute names checked in the
    asker's channel; `changes` says the tool changes something (it is withheld once a
    reply has read outside text, and server actions are recorded)."""

    name: str
    description: str
    family: Family
    run: Callable[[Asker, P], Awaitable[Done]]
    params: type[P]
    asker_permissions: tuple[str, ...] = ()
    bot_permissions: tuple[str, ...] = ()
    changes: bool = False
    guild_only: bool = True
    timeout: float = 20.0

    async def call(self, asker: Asker, params: P) -> Done:
        """`run` the tool. Discord asking for a longer wait than the bot waits (a channel
        renamed twice in 10 minutes) refuses the call: nothing was changed."""
        try:
            return await self.run(asker, params)
        except discord.RateLimited as error:
            raise ToolRefused(
                "Not done, nothing changed: Discord limits how often that can be done; it "
                f"can be tried again in {wait_words(error.retry_after)}."
            ) from error

    def declaration(self) -> types.FunctionDeclarationDict:
        """The function declaration the model reads (JSON schema parameters)."""
        schema = self.params.model_json_schema()
        schema.pop("title", None)
        return {
            "name": self.name,
            "description": self.description,
            "parameters_json_schema": schema,
        }


class ToolRegistry:
    """The tools the loaded cogs offer, by name (owned by the Bot)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        self._declarations: dict[str, types.FunctionDeclarationDict] = {}

    def register(self, tools: Iterable[Tool[Any]]) -> None:
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools named {tool.name!r}")
            self._tools[tool.name] = tool
            self._declarations[tool.name] = tool.declaration()

    def unregister(self, tools: Iterable[Tool[Any]]) -> None:
        for tool in tools:
            self._tools.pop(tool.name, None)
            self._declarations.pop(tool.name, None)

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool[Any]]:
        return iter(self._tools.values())

    def declaration(self, name: str) -> types.FunctionDeclarationDict:
        """A tool's declaration, built once at registration."""
        return self._declarations[name]
