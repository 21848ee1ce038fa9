"""Channel summaries: the turns that no longer fit a reply's context, folded by the
model into one summary the replies read first; in the background after a reply (once
at a time per channel, backing off after a failure: every try is a billed request), or
at once for `/ai summarize`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from cogs.ai.prompting import SUMMARY_INSTRUCTION, summary_request
from cogs.ai.records import Place
from cogs.ai.store import ChatStore
from utils.db import DB_ERRORS
from utils.errors import BotError
from utils.gemini import GeminiProvider
from utils.gemini_replies import AIError
from utils.text import estimate_tokens, truncate
from utils.usage import UsageStore

log = logging.getLogger(__name__)

# A background summary that failed is not asked for again before this many seconds,
# doubling with each failure.
RETRY_FIRST = 60.0
RETRY_MAX = 3600.0
BACKOFF_CHANNELS = 1000  # channels whose failed summaries are remembered
SHARE = 4  # a summary takes at most this part of the context
CHANGED = "The conversation changed while I summarised it, so the summary was not kept; try again."


class Summaries:
    """Summarises channels for the chat engine."""

    def __init__(
        self,
        provider: GeminiProvider,
        store: ChatStore,
        usage: UsageStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.store = store
        self.usage = usage
        self.clock = clock
        # The summary under way per channel: a background task, or `now`'s mark.
        self._running: dict[int, asyncio.Future[None]] = {}
        # Channels whose last background summary failed: (not before, wait that set it),
        # the least recently failed first.
        self._backoff: dict[int, tuple[float, float]] = {}

    def later(self, place: Place) -> None:
        """Summarise the turns that no longer fit, in the background, once at a time, and
        not again while a failed one backs off."""
        channel_id = place.channel_id
        if channel_id in self._running:
            return
        backoff = self._backoff.get(channel_id)
        if backoff is not None and self.clock() < backoff[0]:
            return
        task = asyncio.create_task(self._summarise_quietly(place))
        self._running[channel_id] = task
        task.add_done_callback(partial(self._ended, channel_id))

    async def now(self, place: Place) -> bool:
        """Fold all but the last exchange now (`/ai summarize`), after the summary of the
        channel under way if any: both would fold the same turns, and the one saved
        second would be dropped though billed. None starts in the background meanwhile."""
        channel_id = place.channel_id
        while (running := self._running.get(channel_id)) is not None and not running.done():
            await asyncio.wait([running])
        asked = self._running[channel_id] = asyncio.get_running_loop().create_future()
        try:
            return await self.summarise(place, everything=True)
        finally:
            self._ended(channel_id, asked)
            if not asked.done():  # `close` cancels it, not the command that asked
                asked.set_result(None)

    def _ended(self, channel_id: int, summary: asyncio.Future[None]) -> None:
        if self._running.get(channel_id) is summary:  # not one begun since
            del self._running[channel_id]

    async def _summarise_quietly(self, place: Place) -> None:
        asked = self.clock()
        try:
            await self.summarise(place)
        except BotError as error:
            self._back_off(place.channel_id, asked)
            log.warning("summary of channel %s failed: %s", place.channel_id, error)
        except DB_ERRORS:  # nobody awaits this task: the log is all that hears of it
            self._back_off(place.channel_id, asked)
            log.exception("summary of channel %s could not be read or stored", place.channel_id)

    def _back_off(self, channel_id: int, asked: float) -> None:
        """Wait twice as long as last time (a minute at first) after the failed summary
        was asked for before asking again."""
        _, last = self._backoff.pop(channel_id, (0.0, 0.0))
        wait = min(last * 2, RETRY_MAX) if last else RETRY_FIRST
        self._backoff[channel_id] = (asked + wait, wait)
        if len(self._backoff) > BACKOFF_CHANNELS:
            del self._backoff[next(iter(self._backoff))]

    async def summarise(self, place: Place, *, everything: bool = False) -> bool:
        """Fold older turns into the channel summary; False when there was nothing to fold
        (or, in the background, when the conversation changed while the model wrote).

        Normally only the turns outside the context budget are folded; `everything`
        folds all but the last exchange (for `/ai summarize`, told by a BotError when
        the conversation changed meanwhile).
        """
        guild_id, channel_id = place.guild_id, place.channel_id
        context = await self.store.context(
            guild_id, channel_id, reserve=self.store.context_tokens // 2
        )
        prefs, kept = await self.store.prefs.followed(place, context.prefs), context.turns
        pending = await self.store.turns(channel_id, after_id=prefs.read_after)
        if everything:
            kept = pending[-2:]
        cutoff = kept[0].id if kept else None
        older = [t for t in pending if cutoff is None or t.id < cutoff]
        if not older:
            return False
        # The channel's safety level: a summary of what its replies may say must not be
        # blocked by a stricter filter (else every reply asks for it again, and in vain);
        # the server's model (`/ai model`), as its replies.
        result = await self.provider.generate(
            summary_request(prefs.summary, older),
            system=SUMMARY_INSTRUCTION,
            safety=prefs.safety,
            model=context.model,
        )
        await self.usage.bill(guild_id, result.usage)
        if stopped := result.stopped():  # a summary cut short would lose what it leaves out
            log.warning("the summary of channel %s was stopped: %s", channel_id, stopped.reason)
            raise AIError("The AI stopped before the summary was finished; nothing was changed.")
        summary = result.text.strip()
        if not summary:
            raise AIError("The AI returned an empty summary.")
        # The summary's tokens come out of the context: one far longer than asked for
        # would leave no room for the conversation itself.
        longest = self.store.context_tokens // SHARE
        if estimate_tokens(summary) > longest:
            log.warning("the summary of channel %s was too long; it is cut short", channel_id)
            summary = truncate(summary, 4 * longest)
        saved = await self.store.save_summary(
            guild_id, channel_id, summary, older, prefs.summary_upto
        )
        if not saved:  # reset, or a message deleted, while the model wrote: it starts over
            log.info("the summary of channel %s is dropped: the conversation changed", channel_id)
            if everything:  # `/ai summarize`: not "nothing to summarise", when there was
                raise BotError(CHANGED)
            return False
        self._backoff.pop(channel_id, None)  # it works again (or `/ai summarize` did)
        log.info("summarised %d turns of channel %s", len(older), channel_id)
        return True

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
