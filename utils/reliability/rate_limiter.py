"""Per-key token buckets that limit how often a user, channel or guild may do something.

A key gets ``rate`` tokens every ``per`` seconds, up to ``burst`` stored
tokens. At most ``max_keys`` buckets are kept; the least recently used one is
dropped first. A bucket left alone refills completely and is then the same as
a new one, so with ``max_keys`` well above the number of active keys an
eviction forgets nothing.

Every method is O(1) and thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# Float slack so that waiting exactly the returned delay is always enough.
_EPSILON = 1e-9


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by any hashable value."""

    def __init__(
        self,
        rate: float,
        per: float,
        *,
        burst: int | None = None,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.capacity = float(burst if burst is not None else rate)
        self.max_keys = max_keys
        self._refill_per_second = rate / per
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket.

        Returns 0.0 when the tokens were taken, otherwise the seconds to wait
        until they exist; a refused call takes nothing.
        """
        self._check_cost(cost)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.capacity, now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = self._tokens_at(bucket, now)
                bucket.updated = now
            if bucket.tokens + _EPSILON >= cost:
                bucket.tokens = max(0.0, bucket.tokens - cost)
                return 0.0
            return self._wait_for(cost - bucket.tokens)

    def refund(self, key: Hashable, cost: float = 1.0) -> None:
        """Give back ``cost`` tokens :meth:`acquire` took for what then did not happen."""
        self._check_cost(cost)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                now = self._clock()
                bucket.tokens = min(self.capacity, self._tokens_at(bucket, now) + cost)
                bucket.updated = now

    def peek(self, key: Hashable, cost: float = 1.0) -> float:
        """What :meth:`acquire` would return now, without taking tokens or reordering keys."""
        self._check_cost(cost)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            tokens = self._tokens_at(bucket, self._clock())
            return 0.0 if tokens + _EPSILON >= cost else self._wait_for(cost - tokens)

    def __len__(self) -> int:
        return len(self._buckets)

    def _check_cost(self, cost: float) -> None:
        if not 0 < cost <= self.capacity:
            raise ValueError(f"cost must be in (0, {self.capacity:g}], got {cost:g}")

    def _tokens_at(self, bucket: _Bucket, now: float) -> float:
        elapsed = max(0.0, now - bucket.updated)
        return min(self.capacity, bucket.tokens + elapsed * self._refill_per_second)

    def _wait_for(self, missing: float) -> float:
        return missing / self._refill_per_second
