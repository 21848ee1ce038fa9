"""The Gemini provider: one google-genai client with fallbacks, retries and a breaker.

Every request goes through `GeminiProvider`: it tries `GEMINI_MODEL`, then each
fallback model; on one model it retries 429/5xx/timeouts with exponential backoff
and jitter, honouring the delay Google (or a `Retry-After`) asks for, and moves on
at once when the model is missing (404), out of quota (429 RESOURCE_EXHAUSTED,
while another model is left) or asks to wait longer than the longest backoff (for a
reply someone waits for, than `PATIENCE`); if none answers, users are told the shortest
wait any asked for (`AIBusyError`). It refuses at once while the circuit breaker is
open, and a reply's wait for its first words is bounded by a deadline over all of that.
A reply Google stopped early (safety filters, length limit, ...) ends with a
`ReplyStopped` saying why. An answer that can't be read (no events, not JSON, not
UTF-8), or a stream that ends before its first words, is retried like a dropped
connection; one that ends later without a finish reason was cut, like one that breaks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from google import genai
from google.genai import errors, types
from yarl import URL

from utils.gemini_errors import (
    FAILED_TRY,
    RETRYABLE_STATUS,
    UNAVAILABLE_MODEL_STATUS,
    IncompleteAnswer,
    error_kind,
    is_quota,
    is_transient,
    refusal,
    retry_delay,
)
from utils.gemini_replies import AIBusyError, AIError, AIUnavailableError, Reply
from utils.gemini_requests import request_config
from utils.metrics import Metrics
from utils.reliability.circuit_breaker import CircuitBreaker, CircuitOpenError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
NOT_ANSWERING = "The AI is not answering right now; please try again later."
# The longest wait Google asks for that a reply waits out, its asker watching "typing" (as
# long as Discord shows it at once); background work waits up to `max_delay`.
PATIENCE = 10.0


class GeminiProvider:
    """All of the bot's traffic to Gemini goes through here."""

    def __init__(
        self,
        api_key: str,
        breaker: CircuitBreaker,
        *,
        model: str,
        base_url: str | None = None,
        fallback_models: Sequence[str] = (),
        allowed_models: Sequence[str] = (),
        timeout: float = 60.0,
        max_retries: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        """Create the client; call inside the running event loop (it opens a session)."""
        self.session = _session(base_url or DEFAULT_BASE_URL)
        # The SDK's own timeout is a generous ceiling over the per-piece timeouts
        # below, so a long streamed reply is never cut off by it.
        options = types.HttpOptions(
            base_url=base_url,
            timeout=int(timeout * 10 * 1000),
            aiohttp_client=self.session,
            # One try per call: the retries are ours. Without retry options, google-genai
            # retries a dropped connection itself after sleeping 1 to 10 s.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self.client = genai.Client(api_key=api_key, http_options=options)
        self.breaker = breaker
        self.model = model
        self.fallback_models = tuple(fallback_models)
        # What a server may choose (`/ai model`): the owner pays for every request.
        self.allowed_models = tuple(dict.fromkeys([model, *fallback_models, *allowed_models]))
        self.timeout = timeout
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.metrics = metrics or Metrics()

    async def close(self) -> None:
        await self.client.aio.aclose()
        await self.session.close()

    def allowed(self, name: str) -> str | None:
        """The allowed model called `name` (in any case), or None."""
        return next((m for m in self.allowed_models if m.lower() == name.lower()), None)

    def models_for(self, preferred: str | None) -> list[str]:
        """The models a request tries in turn; a server's choice the owner no longer
        allows (stored before it was taken off the list) gives way to the default."""
        if preferred is not None and preferred not in self.allowed_models:
            preferred = None
        return list(dict.fromkeys([preferred or self.model, self.model, *self.fallback_models]))

    async def stream(
        self,
        contents: Sequence[types.ContentUnionDict],
        *,
        system: str | None = None,
        model: str | None = None,
        safety: str | None = None,
        reply: Reply | None = None,
        deadline: float | None = None,
        tools: list[types.ToolDict] | None = None,
        tool_mode: types.FunctionCallingConfigMode = types.FunctionCallingConfigMode.AUTO,
    ) -> AsyncIterator[str]:
        """Yield text pieces as they arrive; `reply` collects model, text and usage.

        Retries and fallbacks happen only before the first piece, and end at
        `deadline` (event-loop time) if one is given: once text has been shown, a
        failure ends the stream with an `AIError`. A reply Google stopped early
        (or a prompt it refused) ends with a `ReplyStopped`. With `tools`, the functions
        the model asks to run are in `reply.calls` at the end (`tool_mode` "NONE" makes it
        answer in text).
        """
        reply = reply if reply is not None else Reply()
        config = request_config(system, safety, tools=tools, tool_mode=tool_mode)
        chunks, firsts = await self._with_retries(
            lambda name: self._open_stream(name, contents, config),
            model,
            reply,
            deadline,
        )
        try:
            for first in firsts:
                if text := self._take(first, reply):
                    yield text
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                if text := self._take(chunk, reply):
                    yield text
            if reply.finish_reason is None and reply.block_reason is None:
                # Gemini ends every answer with a finish reason: this one was cut.
                raise IncompleteAnswer("the stream ended without a finish reason")
        except (errors.APIError, *FAILED_TRY) as error:
            self.metrics.gemini_error(error_kind(error))
            if is_transient(error):
                self.breaker.record_failure()
            log.warning(
                "stream from %s broke after %d chars: %r", reply.model, len(reply.text), error
            )
            raise AIError("The reply was cut off by an AI error; please try again.") from error
        finally:
            await chunks.aclose()
            self.metrics.tokens(reply.usage.prompt_tokens, reply.usage.output_tokens)
        if stopped := reply.stopped():
            log.info(
                "%s stopped a reply after %d chars: finish %s, block %s",
                reply.model,
                len(reply.text),
                reply.finish_reason,
                reply.block_reason,
            )
            raise stopped

    async def generate(
        self,
        contents: Sequence[types.ContentUnionDict],
        *,
        system: str | None = None,
        model: str | None = None,
        safety: str | None = None,
        schema: types.SchemaDict | None = None,
        tools: list[types.ToolDict] | None = None,
        max_output_tokens: int | None = None,
    ) -> Reply:
        """A whole reply at once (for summaries and background work); `safety` as in
        `stream`; with `schema`, the reply is JSON text of that shape (structured output);
        `tools` may be Google's own (search, URL context), whose sources end up in
        `reply.sources`; `max_output_tokens` bounds what the model writes (thinking
        included)."""
        reply = Reply()
        config = request_config(
            system, safety, schema, tools=tools, max_output_tokens=max_output_tokens
        )

        async def request(name: str) -> types.GenerateContentResponse:
            return await self.client.aio.models.generate_content(
                model=name, contents=list(contents), config=config
            )

        response = await self._with_retries(request, model, reply, None)
        self._take(response, reply)
        self.metrics.tokens(reply.usage.prompt_tokens, reply.usage.output_tokens)
        return reply

    async def _open_stream(
        self,
        model: str,
        contents: Sequence[types.ContentUnionDict],
        config: types.GenerateContentConfigDict | None,
    ) -> tuple[AsyncIterator[types.GenerateContentResponse], list[types.GenerateContentResponse]]:
        """Start a stream and wait for the chunks up to its first words, call or end (so
        failures until then, a stream of no candidates among them, can still be retried)."""
        chunks = await self.client.aio.models.generate_content_stream(
            model=model, contents=list(contents), config=config
        )
        firsts: list[types.GenerateContentResponse] = []
        try:
            while not firsts or not _begun(firsts[-1]):
                firsts.append(await anext(chunks))
            return chunks, firsts
        except StopAsyncIteration:
            raise IncompleteAnswer("the stream ended before the reply began") from None
        except BaseException:
            # google-genai annotates its async generator as a plain AsyncIterator.
            await chunks.aclose()  # pyright: ignore[reportAttributeAccessIssue]
            raise

    async def _with_retries(
        self,
        request: Callable[[str], Awaitable[Any]],
        preferred: str | None,
        reply: Reply,
        deadline: float | None,
    ) -> Any:
        """`request(model)`, each try under a timeout: retries on one model, then the
        next model; all of it ends by `deadline` (event-loop time).

        The breaker admits the request as a whole (an open breaker refuses it; a
        half-open one lets one request through as its trial). Its failed tries count
        for the breaker only when no model answered: a fallback that answers counts
        as a success, so a dead main model does not open the breaker for good ones.
        """
        asks: dict[str, float | None] = {}  # the wait each model asked for last
        try:
            async with self.breaker:
                return await self._tries(request, self.models_for(preferred), reply, deadline, asks)
        except CircuitOpenError as error:
            self.metrics.gemini_error(error_kind(error))
            raise AIUnavailableError(error.retry_after) from error
        except (errors.APIError, *FAILED_TRY) as error:
            # No model answered (see _give_up).
            if self.breaker.retry_after:
                raise AIUnavailableError(self.breaker.retry_after) from error
            if isinstance(error, errors.APIError) and retry_delay(error) is not None:
                # Asked to wait: the soonest any model will answer is when to try again.
                raise AIBusyError(min(w for w in asks.values() if w is not None)) from error
            raise AIError(NOT_ANSWERING) from error

    async def _tries(
        self,
        request: Callable[[str], Awaitable[Any]],
        models: list[str],
        reply: Reply,
        deadline: float | None,
        asks: dict[str, float | None],
    ) -> Any:
        loop = asyncio.get_running_loop()

        def left() -> float:
            return math.inf if deadline is None else deadline - loop.time()

        failures: list[BaseException] = []
        longest = self.max_delay if deadline is None else min(self.max_delay, PATIENCE)
        for index, model in enumerate(models):
            for attempt in range(self.max_retries + 1):
                timeout = min(self.timeout, left())
                if timeout <= 0:
                    log.warning("no answer from Gemini within the reply deadline")
                    return self._give_up(failures or [TimeoutError("reply deadline")])
                asked: float | None = None
                try:
                    async with asyncio.timeout(timeout):
                        result = await request(model)
                except errors.APIError as error:
                    self.metrics.gemini_error(error_kind(error))
                    if error.code not in RETRYABLE_STATUS | UNAVAILABLE_MODEL_STATUS:
                        log.error("Gemini refused the request: %s %s", error.code, error.message)
                        raise AIError(refusal(error)) from error
                    failures.append(error)
                    asked = asks[model] = retry_delay(error)
                    if error.code in UNAVAILABLE_MODEL_STATUS or (
                        is_quota(error) and index + 1 < len(models)
                    ):
                        log.warning("model %s: %s; trying the next", model, error.status)
                        break
                    if asked is not None and asked > longest:
                        # A try before then fails again (a quota used up for the day, say).
                        log.warning("model %s asks for %.0f s; trying the next", model, asked)
                        break
                except FAILED_TRY as error:
                    self.metrics.gemini_error(error_kind(error))
                    failures.append(error)
                    asks[model] = None
                else:
                    reply.model = model
                    return result
                if attempt == self.max_retries:
                    log.warning("model %s failed %d times; trying the next", model, attempt + 1)
                    break
                delay = self._delay(attempt, asked)
                if delay >= left():
                    break  # no time to retry this model: what is left goes to the next
                log.info(
                    "Gemini %s failed (%r); retry %d in %.2f s",
                    model,
                    failures[-1],
                    attempt + 1,
                    delay,
                )
                await self._sleep(delay)
        return self._give_up(failures)

    def _give_up(self, failures: list[BaseException]) -> NoReturn:
        """No model answered: count the failed tries for the breaker, raise the last (it
        leaves the breaker's block, which counts it and ends a trial)."""
        last = failures[-1]
        for error in failures[:-1]:
            if is_transient(error):
                self.breaker.record_failure()
        raise last

    def _delay(self, attempt: int, asked: float | None) -> float:
        """Exponential backoff with jitter, or the delay Google asked for (plus a little)."""
        delay = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        if asked is not None:
            delay = min(self.max_delay, asked + delay / 4)
        return delay

    @staticmethod
    def _take(response: types.GenerateContentResponse, reply: Reply) -> str:
        """Add a response's parts, text, usage, sources, pages read and finish or block
        reason to `reply`; return the text."""
        text = ""
        candidate = response.candidates[0] if response.candidates else None
        if candidate is not None:
            for part in candidate.content.parts or [] if candidate.content else []:
                reply.parts.append(part)
                if part.function_call is not None:
                    reply.calls.append(part.function_call)
                elif part.text and not part.thought:
                    text += part.text
            if candidate.finish_reason:
                reply.finish_reason = candidate.finish_reason.value
            grounding = candidate.grounding_metadata
            for chunk in grounding.grounding_chunks or [] if grounding else []:
                if chunk.web is not None and chunk.web.uri:
                    reply.sources.append((chunk.web.title or chunk.web.domain or "", chunk.web.uri))
            context = candidate.url_context_metadata
            for page in context.url_metadata or [] if context else []:
                if page.url_retrieval_status is not None:
                    reply.url_statuses.append(page.url_retrieval_status.value)
        reply.text += text
        reply.usage.add(response.usage_metadata)
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reply.block_reason = feedback.block_reason.value
        return text


def _begun(response: types.GenerateContentResponse) -> bool:
    """Whether a stream's chunk begins the reply: words, a call, a finish or a refusal."""
    if response.prompt_feedback is not None and response.prompt_feedback.block_reason:
        return True
    candidate = response.candidates[0] if response.candidates else None
    if candidate is None:
        return False
    parts = candidate.content.parts if candidate.content else None
    return bool(candidate.finish_reason) or any(
        part.function_call is not None or (part.text and not part.thought) for part in parts or []
    )


def _session(base_url: str) -> aiohttp.ClientSession:
    """The HTTP session for Gemini, with any proxy the environment names for `base_url`
    looked up once (google-genai's default session trusts the environment on every
    request, which costs two thread-pool round trips: a proxy and a netrc lookup)."""
    try:
        proxy, proxy_auth = get_env_proxy_for_url(URL(base_url))
    except LookupError:
        proxy, proxy_auth = None, None
    return aiohttp.ClientSession(proxy=proxy, proxy_auth=proxy_auth)
