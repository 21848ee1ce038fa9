"""The conversation engine: context, generation and storage of a channel's replies (its
summaries: `cogs.ai.summaries`).

An exchange is stored as soon as the first words of the reply are shown, and
kept in step with what is shown until it ends, marked incomplete if it stopped
early. The model turn also keeps the id of the reply's latest Discord message, so
a reply the process died while writing can be finalised at the next start, and the
ids of its earlier ones, so that deleting any of them takes the reply out of the history. A
reply that failed before showing anything stores nothing: the person saw only an
error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from google.genai import types

from cogs.ai.personas import Persona, choose_persona
from cogs.ai.prompting import (
    ONE_MESSAGE_INSTRUCTION,
    TOOLS_INSTRUCTION,
    UserInput,
    build_contents,
    memory_section,
    system_instruction,
)
from cogs.ai.records import Place, Turn
from cogs.ai.store import ChatStore
from cogs.ai.streaming import ReplyCutOff, Sink, Splitter, stream_reply
from cogs.ai.summaries import Summaries
from cogs.ai.tools.toolbox import Toolbox, footer
from utils.errors import BotError
from utils.gemini import GeminiProvider
from utils.gemini_replies import (
    MALFORMED_CALL,
    AIUnavailableError,
    Reply,
    ReplyStopped,
)
from utils.memory.chatlog import BOT_LABEL
from utils.memory.records import Readable, Recalled, Scope
from utils.memory.service import MemoryService
from utils.metrics import Metrics
from utils.text import DISCORD_LIMIT, code_block_closer, estimate_tokens
from utils.usage import UsageStore

log = logging.getLogger(__name__)

_AUTO, _NONE = types.FunctionCallingConfigMode.AUTO, types.FunctionCallingConfigMode.NONE
# Characters of one reply shown: a model asked to count to a million would otherwise
# flood the channel with a hundred messages (and hold its queue for minutes).
MAX_REPLY_CHARS = 10 * DISCORD_LIMIT
TOO_LONG = "cut at the length limit"
RESET_HINT = "If earlier messages here are the cause, `/ai reset` (Manage Messages) forgets them."
RESET_DM_HINT = "If earlier messages are the cause, `/ai reset` forgets our conversation."


class _Exchange:
    """The stored rows of one exchange: written when the reply is first shown, then
    rewritten as it grows and when it ends."""

    def __init__(
        self, store: ChatStore, place: Place, user: Turn, continues: int, fresh_from: int
    ) -> None:
        self.store = store
        self.place = place
        self.user = user
        self.continues = continues  # the newest turn of the context it answers (0: none)
        self.fresh_from = fresh_from  # the channel's fresh-start mark when it was read
        self.turns: list[Turn] = []
        self.parts: list[int] = []  # the reply's earlier messages, stored with it
        self.dropped = False  # the channel was reset before it could be stored
        self._adding: asyncio.Task[list[Turn]] | None = None  # the first write

    async def record(self, text: str, incomplete: str | None, message_ids: list[int]) -> None:
        if self.dropped:
            return
        *earlier, message_id = message_ids
        parts = earlier[len(self.parts) :]  # those not stored yet
        if not self.turns:
            adding = self._adding
            if adding is None or (adding.done() and (adding.cancelled() or adding.exception())):
                model = Turn("model", 0, BOT_LABEL, text, message_id, incomplete)
                adding = self._adding = asyncio.create_task(
                    self.store.add_turns(
                        self.place.guild_id,
                        self.place.channel_id,
                        [self.user, model],
                        continues=self.continues,
                        fresh_from=self.fresh_from,
                        parts=parts,
                    )
                )
            # Shielded: a shutdown cancelling the reply during this write can't stop it
            # committing (the database's thread runs it), so the record that finalises the
            # reply waits for this same write, then rewrites it: never a second exchange.
            self.turns = await asyncio.shield(adding)
            self.dropped = not self.turns
        if self.turns:
            old = self.turns[1]
            if (text, incomplete, message_id) != (old.content, old.incomplete, old.message_id):
                self.turns[1] = await self.store.rewrite_turn(
                    self.place.channel_id, old, text, incomplete, message_id, parts
                )
        self.parts = earlier


class ChatEngine:
    """Answers one message in a channel; the caller guarantees one at a time per channel."""

    def __init__(
        self,
        provider: GeminiProvider,
        store: ChatStore,
        usage: UsageStore,
        personas: dict[str, Persona],
        *,
        default_persona: str,
        edit_interval: float,
        max_tool_rounds: int = 5,
        memory: MemoryService | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.store = store
        self.usage = usage
        self.personas = personas
        self.default_persona = default_persona
        self.edit_interval = edit_interval
        self.max_tool_rounds = max_tool_rounds
        self.memory = memory
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.summaries = Summaries(provider, store, usage, clock=clock)

    def check_available(self) -> None:
        """Refuse at once while the AI's breaker is open (before any other work)."""
        if wait := self.provider.breaker.retry_after:
            raise AIUnavailableError(wait)

    async def answer(
        self,
        place: Place,
        author_id: int,
        message_id: int | None,
        user: UserInput,
        sink: Sink,
        *,
        deadline: float,
        toolbox: Toolbox | None = None,
        system: str | None = None,
        splitter: Splitter | None = None,
        readable: Readable | None = None,
        one_message: bool = False,
    ) -> Reply:
        """Answer `user` into `sink`, using the tools of `toolbox` if any; the first words
        or an error come by `deadline` (event-loop time). A `system` instruction replaces
        the persona or channel prompt, and a `splitter` the plain one (roleplay scenes).
        Memories come only from channels the person may read (`readable`). With
        `one_message` (slowmode) the reply stops where its first message ends."""
        context = await self.store.context(
            place.guild_id, place.channel_id, reserve=estimate_tokens(user.text)
        )
        prefs, history = await self.store.prefs.followed(place, context.prefs), context.turns
        # A thread's first exchange holds the message the thread was started from.
        opening = None if history or prefs.summary else user.opening
        if opening is not None and (started := await opening()):
            user = replace(user, notes=[started, *user.notes])
        asked = user  # what the model reads of the message
        if user.replied and user.replied[0] not in {turn.message_id for turn in history}:
            # A message of the bot's the history does not hold: the model reads it, the
            # history keeps the message as any edit of it reads (`asked.stored_text`).
            asked = replace(user, notes=[*user.notes, user.replied[1]])
        # Long-term memory: what this guild (or this person's DMs) said before, if relevant.
        scope = Scope.of(place.guild_id, author_id)
        recalled: list[Recalled] = []
        if self.memory is not None:
            recall_started = time.monotonic()
            recalled = await self.memory.for_reply(
                scope,
                user.text,
                history,
                author_id=author_id,
                author_name=user.author_name,
                readable=readable,
            )
            self.metrics.memory_recall.observe(time.monotonic() - recall_started)
        contents = build_contents(prefs.summary, history, asked)
        if system is None:
            system = system_instruction(
                choose_persona(self.personas, prefs.persona, self.default_persona),
                prefs.system_prompt,
                place.description,
            )
        system += memory_section(recalled)
        if one_message:
            system += ONE_MESSAGE_INSTRUCTION
        if toolbox:
            toolbox.saw_memories(recalled)  # others' memories: no actions in this reply
            system += TOOLS_INSTRUCTION
        reply = Reply()
        exchange = _Exchange(
            self.store,
            place,
            Turn("user", author_id, user.author_name, user.stored_text, message_id),
            continues=history[-1].id if history else prefs.summary_upto,
            fresh_from=prefs.context_from,
        )
        pieces = self._rounds(
            [*contents],
            reply,
            toolbox or None,
            system=system,
            model=context.model,
            safety=prefs.safety,
            deadline=deadline,
        )
        cut_off: ReplyCutOff | None = None
        try:
            async with aclosing(pieces):  # ended at once, so the round in progress counts too
                await stream_reply(
                    pieces,
                    sink,
                    exchange.record,
                    interval=self.edit_interval,
                    splitter=splitter,
                    one_message=one_message,
                )
        except ReplyCutOff as error:  # shown and stored, marked incomplete
            cut_off = error
        except BotError as error:  # nothing shown (blocked, failed); Google's answer is billed
            await self.usage.bill(place.guild_id, reply.usage)
            if isinstance(error, ReplyStopped) and error.prompt and (history or prefs.summary):
                # What was said before goes with every message: it may be what is refused.
                hint = RESET_DM_HINT if place.guild_id is None else RESET_HINT
                raise ReplyStopped(
                    error.reason, error.why, prompt=True, partial=False, hint=hint
                ) from error
            raise
        except asyncio.CancelledError:
            # A shutdown: what was shown is stored, cut off by the restart (`stream_reply`);
            # it is remembered (memory indexes its queue as it stops) and billed all the same.
            self._remember(scope, place, exchange, toolbox)
            await self.usage.bill(place.guild_id, reply.usage)
            raise
        self._remember(scope, place, exchange, toolbox)
        await self.usage.bill(place.guild_id, reply.usage)
        if context.overflow:
            self.summaries.later(place)
        if cut_off is not None:
            raise cut_off
        return reply

    def _remember(
        self, scope: Scope, place: Place, exchange: _Exchange, toolbox: Toolbox | None
    ) -> None:
        if self.memory is None:
            return
        if toolbox is not None and toolbox.forgets_exchange:
            for turn in exchange.turns:  # `/chat`'s question has no message: its reply has
                if turn.message_id is not None:
                    self.memory.forgotten_in(turn.message_id)
        # Indexed in the background; never blocks the reply.
        self.memory.index_turns(scope, place.channel_id, exchange.turns, exchange.parts)

    async def _rounds(
        self,
        contents: list[types.ContentUnionDict],
        reply: Reply,
        toolbox: Toolbox | None,
        **request: Any,
    ) -> AsyncGenerator[str, None]:
        """The reply's text over as many requests as its tool calls take (at most
        `max_tool_rounds` rounds of calls, a malformed call asked for again counting as
        one; the last request must answer in text), then a line of what the tools did and
        the sources (what they did shows above an error that ends a later round too).
        `reply` collects all of it; each request gets as long for its first words as the
        first one had."""
        loop = asyncio.get_running_loop()
        span = request["deadline"] - loop.time()
        for round_ in range(self.max_tool_rounds + 1):
            part = Reply()
            tools: list[types.ToolDict] | None = None
            if toolbox is not None:
                tools = [{"function_declarations": toolbox.declarations()}]
            mode = _AUTO if round_ < self.max_tool_rounds else _NONE
            first = True
            try:
                async for text in self.provider.stream(
                    contents, reply=part, tools=tools, tool_mode=mode, **request
                ):
                    if first and reply.text and not reply.text[-1].isspace():
                        yield "\n\n"  # a new round's words start a new paragraph
                    first = False
                    kept = text[: MAX_REPLY_CHARS - len(reply.text)]
                    reply.text += kept
                    yield kept
                    if kept != text:
                        raise ReplyStopped("length", TOO_LONG, prompt=False, partial=True)
            except BotError as error:
                if (
                    isinstance(error, ReplyStopped)
                    and error.reason == MALFORMED_CALL
                    and not part.text
                    and mode != _NONE
                ):
                    # A call the model got wrong (Gemini does that now and then) is asked
                    # for again, as a round of its own.
                    log.info("%s made a malformed tool call; asking again", part.model)
                    request["deadline"] = loop.time() + span
                    continue
                # What earlier rounds' tools did (a channel made, a song queued) shows
                # above the error, so nobody asks for it twice.
                if toolbox is not None and (done := footer(toolbox.notes, [])):
                    yield code_block_closer(reply.text) + done
                raise
            finally:  # Google bills a round however it ended
                reply.usage.prompt_tokens += part.usage.prompt_tokens
                reply.usage.output_tokens += part.usage.output_tokens
            reply.model = part.model
            reply.sources += part.sources
            if toolbox is None or not part.calls or mode == _NONE:
                break
            contents.append(part.model_turn())
            contents.append({"role": "user", "parts": await toolbox.run_all(part.calls)})
            request["deadline"] = loop.time() + span
        if toolbox is not None:  # what the tools read came before the words that drew on it
            reply.sources[:0] = [(s.title, s.uri) for s in toolbox.sources]
        if tail := footer(toolbox.notes if toolbox is not None else [], reply.sources):
            yield code_block_closer(reply.text) + tail  # under the reply, not in its code

    async def close(self) -> None:
        await self.summaries.close()
