"""Whether the AI takes a request now: the input length and the per-user and per-channel
rate limits; and the short notices that say why not, each at most once per interval."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING

import discord

from cogs.ai.replies import Held
from utils.reliability.rate_limiter import RateLimiter

if TYPE_CHECKING:
    from config import Settings
    from utils.metrics import Metrics

log = logging.getLogger(__name__)

NOTICE_INTERVAL = 30.0  # seconds between repeated busy / rate-limit notices per person
BUSY = "I'm still answering earlier messages here; please wait a moment and try again."


class Admission:
    """The limits every message and `/chat` pass before they are queued."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.max_input_chars = settings.ai_max_input_chars
        self.metrics = metrics
        self.user_limits = RateLimiter(settings.ai_user_messages_per_minute, 60)
        self.channel_limits = RateLimiter(settings.ai_channel_messages_per_minute, 60)
        self.notices = RateLimiter(1, NOTICE_INTERVAL)

    def check(self, text: str, user_id: int, channel_id: int) -> tuple[Hashable, str] | None:
        """Why a message can't be answered (notice key and text), or None to go ahead."""
        limit = self.max_input_chars
        if len(text) > limit:
            self.metrics.ai_outcome("too_long")
            # One notice per person a while: a flood of long messages gets no flood back.
            return ("long", user_id), (
                f"That message is too long for me: {len(text)} characters (the limit is {limit})."
            )
        mine, everyone = self.user_limits.peek(user_id), self.channel_limits.peek(channel_id)
        if mine or everyone:
            self.metrics.ai_outcome("rate_limited")
            seconds = math.ceil(max(mine, everyone))  # never "try again in 0 s"
            who = "You're sending messages" if mine >= everyone else "Messages here are coming"
            return ("rate", user_id), f"{who} faster than I can answer; try again in {seconds} s."
        self.user_limits.acquire(user_id)
        self.channel_limits.acquire(channel_id)
        return None

    def refund(self, user_id: int, channel_id: int) -> None:
        """Give back what `check` took for a message then refused (a full queue, files
        that fail): only the messages the AI takes count against the limits."""
        self.user_limits.refund(user_id)
        self.channel_limits.refund(channel_id)

    async def notice(
        self, key: Hashable, send: Callable[[str], Awaitable[object]], text: str
    ) -> None:
        """Send a short notice (through `send`, which pings no one), at most once per key
        every NOTICE_INTERVAL seconds."""
        if self.notices.acquire(key) > 0:
            return
        try:
            await send(text)
        except (discord.HTTPException, Held):  # Held: a long slowmode holds it
            log.warning("could not send a notice: %s", text)
        else:
            self.metrics.ai_notices.inc()
