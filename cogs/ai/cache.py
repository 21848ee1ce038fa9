"""`ChatCache`: the in-memory copy `cogs.ai.store.ChatStore` keeps of what every reply
reads, bounded per channel and guarded against reads that race a write. No I/O."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from cogs.ai.records import ChannelPrefs, GuildPrefs, Tail

_V = TypeVar("_V")


class ChatCache:
    """The newest turns that fit the context (`tails`), the channel preferences (`prefs`)
    and the guild preferences (`guilds`) of the `size` most recently used channels or guilds,
    plus every channel with auto-respond on (`autorespond`). `writes` counts the store's
    writes, so a read that raced one returns what it read but does not cache it."""

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

    @staticmethod
    def get(cache: OrderedDict[int, _V], key: int) -> _V | None:
        """A cached value (marked as just used), or None."""
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value
