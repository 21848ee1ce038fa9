"""`ChatCache`: the in-memory copy `cogs.ai.store.ChatStore` keeps (and shares with its
`ChatPrefs`) of what every reply reads, bounded per channel and guarded against reads
that race a write. No I/O."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from cogs.ai.records import ChannelPrefs, GuildPrefs, Tail, Turn

_V = TypeVar("_V")
TOPIC = "ai"  # of the changes told to other processes (preferences and deletions), so
# that they drop their copies (`ChatStore.changed`)


class ChatCache:
    """The newest turns that fit the context (`tails`), the channel preferences (`prefs`)
    and the guild preferences (`guilds`) of the `size` most recently used channels or guilds,
    plus every channel with auto-respond on (`autorespond`). `writes` counts the writes of
    the store and its preferences (`ChatPrefs`), so a read that raced one returns what it
    read but does not cache it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tails: OrderedDict[int, Tail] = OrderedDict()
        self.prefs: OrderedDict[int, ChannelPrefs] = OrderedDict()
        self.guilds: OrderedDict[int, GuildPrefs] = OrderedDict()
        self.autorespond: set[int] = set()
        self.writes = 0  # bumped after every write, so racing reads can tell

    def remember(self, cache: OrderedDict[int, _V], key: int, value: _V, since: int) -> _V:
        """Keep a value read when `writes` was `since`, unless a write came between."""
        if self.writes == since:
            cache[key] = value
            if len(cache) > self.size:
                cache.popitem(last=False)
        return value

    @contextmanager
    def writing(self, *drop: tuple[OrderedDict[int, Any], int]) -> Iterator[None]:
        """Around a write: afterwards, whether it committed, failed or was cancelled
        (perhaps after committing), count it and drop the cached entries it touches."""
        try:
            yield
        finally:
            self.writes += 1
            for cache, key in drop:
                cache.pop(key, None)

    @contextmanager
    def extending(self, channel_id: int) -> Iterator[None]:
        """Around a write that the channel's cached tail then follows: count it, and if it
        fails (perhaps after committing) or is cancelled, drop the tail."""
        try:
            yield
        except BaseException:
            self.tails.pop(channel_id, None)  # it may have committed: read it afresh
            raise
        finally:
            self.writes += 1

    def forget(self, key: int | None = None) -> None:
        """Drop what is kept of a channel or a guild (of all when None) after a write of
        unknown reach or another process's change. Counted as a write, so that a read
        racing it does not keep what it read."""
        self.writes += 1
        for cache in (self.tails, self.prefs, self.guilds):
            if key is None:
                cache.clear()
            else:
                cache.pop(key, None)

    def rewritten(self, channel_id: int, old: Turn, new: Turn, max_tokens: int) -> None:
        """A turn of the channel was rewritten (a reply as it grows)."""
        if tail := self.tails.get(channel_id):
            if new.tokens < old.tokens and tail.older_id:
                del self.tails[channel_id]  # turns left out may fit now: read them afresh
            else:
                tail.replace(new, max_tokens)

    def set_autorespond(self, channel_id: int, on: bool) -> None:
        if on:
            self.autorespond.add(channel_id)
        else:
            self.autorespond.discard(channel_id)

    @staticmethod
    def get(cache: OrderedDict[int, _V], key: int) -> _V | None:
        """A cached value (marked as just used), or None."""
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value
