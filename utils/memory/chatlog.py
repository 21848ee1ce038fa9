"""The conversation log as memory sees it: the read API the chat store gives memory,
and the one way a turn is written out as text (for the model and for memory alike).

Memory never reads the chat tables itself; the Bot hands it the chat store, which
implements `ChatLog`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

BOT_LABEL = "assistant"  # how the bot's own messages are labelled wherever turns are text


class LoggedTurn(Protocol):
    """A conversation message as the chat store keeps it (`cogs.ai.records.Turn`)."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...  # "user" or "model"

    @property
    def author_id(self) -> int: ...

    @property
    def author_name(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def message_id(self) -> int | None: ...  # its Discord message (a reply's latest)


class ChannelHead(Protocol):
    """A channel of the log and its newest turn."""

    @property
    def channel_id(self) -> int: ...

    @property
    def guild_id(self) -> int | None: ...

    @property
    def last_id(self) -> int: ...


class ChatLog(Protocol):
    """What memory reads of the conversation log."""

    async def channel_heads(self, after_id: int, limit: int) -> Sequence[ChannelHead]:
        """Channels whose newest turn is after `after_id`, by that turn, oldest first."""
        ...

    async def newest_turns(
        self, channel_id: int, after_id: int, limit: int
    ) -> Sequence[LoggedTurn]:
        """A channel's newest `limit` turns after `after_id`, oldest first."""
        ...

    async def last_id(self) -> int:
        """The highest id the log has given a turn, deleted since or not (0: none yet)."""
        ...

    async def guild_model(self, guild_id: int | None) -> str | None:
        """The model a guild chose for its chat (`/ai model`); None: the default."""
        ...

    async def channel_safety(self, channel_id: int) -> str | None:
        """The safety level a channel or thread chose itself (`/ai safety`); None: none."""
        ...


def render_turn(role: str, author_name: str, content: str) -> str:
    """A turn as a line of text: `name: words`, the bot's own as `assistant: words`."""
    return f"{BOT_LABEL if role == 'model' else author_name}: {content}"


def by_bot(line: str) -> bool:
    """Whether a `render_turn` line is one of the bot's own."""
    return line.startswith(f"{BOT_LABEL}: ")
