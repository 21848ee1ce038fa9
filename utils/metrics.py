"""The bot's Prometheus metrics: one registry per `Metrics` (the Bot owns one), the
metrics in it, and how an AI reply is measured.

Counters and histograms are recorded where things happen. Gauges of current state
are read when scraped: the music queues through `Gauge.set_function` (set by the
music cog), the bot's own state (breakers, voice, database size) by the collector
in `utils.health`. Label values come from short
fixed lists in code (outcomes, error kinds, breaker names), never from user input or
Discord ids, so the number of series stays bounded. Those of the lists below are
exported at 0 from the start: a series that first appears at 1 hides that first event
from rate() and increase().
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from utils.log import current_request

# Seconds from the message (or command) to the first text shown, and to the last edit.
REPLY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 120)
RECALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AI_OUTCOMES = (
    "ok",
    "cut_off",
    "blocked",
    "error",
    "unavailable",
    "cancelled",
    "too_long",
    "rate_limited",
    "busy",
)
GEMINI_ERROR_KINDS = (  # utils.gemini_errors.error_kind
    "rate_limited",
    "server",
    "timeout",
    "network",
    "refused",
    "model_unavailable",
    "circuit_open",
)


class Sink(Protocol):
    async def send(self, content: str) -> Any: ...


class Metrics:
    """Every metric the bot exports, registered in its own `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.messages_answered = Counter(
            "gembot_messages_answered",
            "Messages and slash commands answered: AI replies shown, commands completed",
            ["kind"],
            registry=registry,
        )
        self.ai_replies = Counter(
            "gembot_ai_replies",
            f"Messages addressed to the AI, by how they ended ({', '.join(AI_OUTCOMES)})",
            ["outcome"],
            registry=registry,
        )
        self.reply_first_text = Histogram(
            "gembot_ai_reply_first_text_seconds",
            "From the message or command to the first text of the reply shown in Discord",
            buckets=REPLY_BUCKETS,
            registry=registry,
        )
        self.reply_final = Histogram(
            "gembot_ai_reply_seconds",
            "From the message or command to the final text of the reply",
            buckets=REPLY_BUCKETS,
            registry=registry,
        )
        self.ai_notices = Counter(
            "gembot_ai_notices",
            "Short notices sent instead of a reply (rate limit, busy, too long), "
            "at most one per person or channel every 30 s",
            registry=registry,
        )
        self.gemini_tokens = Counter(
            "gembot_gemini_tokens",
            "Gemini tokens: in (prompt) and out (generated)",
            ["direction"],
            registry=registry,
        )
        self.gemini_errors = Counter(
            "gembot_gemini_errors",
            "Failed Gemini calls (each attempt) by kind",
            ["kind"],
            registry=registry,
        )
        self.memory_recall = Histogram(
            "gembot_memory_recall_seconds",
            "Time a reply spent recalling long-term memories",
            buckets=RECALL_BUCKETS,
            registry=registry,
        )
        self.event_loop_lag = Gauge(
            "gembot_event_loop_lag_seconds",
            "How late the event loop ran a timer, as last measured",
            registry=registry,
        )
        self.queued_tracks = Gauge(
            "gembot_music_queued_tracks",
            "Tracks waiting in the music queues of all servers",
            registry=registry,
        )
        for counter, values in (
            (self.messages_answered, ("ai", "command")),
            (self.ai_replies, AI_OUTCOMES),
            (self.gemini_tokens, ("in", "out")),
            (self.gemini_errors, GEMINI_ERROR_KINDS),
        ):
            for value in values:
                counter.labels(value)

    def reply(self) -> ReplyTimer:
        """Start measuring one AI reply, from the arrival of the current request."""
        request = current_request()
        return ReplyTimer(self, request.started if request else time.monotonic())

    def ai_outcome(self, outcome: str) -> None:
        """Count a message addressed to the AI that got no reply (refused or failed)."""
        self.ai_replies.labels(outcome).inc()

    def gemini_error(self, kind: str) -> None:
        self.gemini_errors.labels(kind).inc()

    def tokens(self, prompt: int, output: int) -> None:
        self.gemini_tokens.labels("in").inc(prompt)
        self.gemini_tokens.labels("out").inc(output)


class ReplyTimer:
    """One AI reply: when its first text was shown, and how it ended."""

    def __init__(self, metrics: Metrics, started: float) -> None:
        self.metrics = metrics
        self.started = started  # time.monotonic() when the message or command arrived
        self.first_text: float | None = None  # seconds after `started`

    def watch(self, sink: Sink) -> _WatchedSink:
        """`sink`, noting when it first shows text."""
        return _WatchedSink(sink, self)

    def shown(self) -> None:
        if self.first_text is None:
            self.first_text = time.monotonic() - self.started
            self.metrics.reply_first_text.observe(self.first_text)

    def finish(self, outcome: str) -> float:
        """Count the outcome; time the whole reply if any of it was shown. Returns the time."""
        elapsed = time.monotonic() - self.started
        self.metrics.ai_replies.labels(outcome).inc()
        if self.first_text is not None:
            self.metrics.messages_answered.labels("ai").inc()
            self.metrics.reply_final.observe(elapsed)
        return elapsed


class _WatchedSink:
    def __init__(self, sink: Sink, timer: ReplyTimer) -> None:
        self.sink = sink
        self.timer = timer

    async def send(self, content: str) -> Any:
        sent = await self.sink.send(content)
        self.timer.shown()
        return sent
