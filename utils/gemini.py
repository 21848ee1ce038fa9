"""The Gemini provider: one google-genai client with fallbacks, retries and a breaker.

Every request goes through `GeminiProvider`: it tries `GEMINI_MODEL`, then the
fallback models when a model is unavailable; retries 429/5xx/timeouts with
exponential backoff and jitter, honouring the delay Google asks for; and
refuses at once while the circuit breaker is open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from google import genai
from google.genai import errors, types
from yarl import URL

from utils.errors import BotError
from utils.metrics import Metrics
from utils.reliability.circuit_breaker import CircuitBreaker, CircuitOpenError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
UNAVAILABLE_MODEL_STATUS = frozenset({404})
_DURATION = re.compile(r"^\s*([\d.]+)s\s*$")
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class AIError(BotError):
    """The model could not answer; the message is safe to show."""


class AIUnavailableError(AIError):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"AI is unavailable, try again in {max(1, round(retry_after))} s.")


@dataclass
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0

    def add(self, metadata: types.GenerateContentResponseUsageMetadata | None) -> None:
        """Record the latest totals (Gemini reports running totals per chunk)."""
        if metadata is None:
            return
        self.prompt_tokens = metadata.prompt_token_count or self.prompt_tokens
        self.output_tokens = metadata.candidates_token_count or self.output_tokens


@dataclass
class Reply:
    """What a finished or in-progress generation produced so far."""

    model: str = ""
    text: str = ""
    usage: Usage = field(default_factory=Usage)


def retry_delay(error: errors.APIError) -> float | None:
    """The `RetryInfo.retryDelay` Google sent with an error, in seconds."""
    body = error.details if isinstance(error.details, dict) else {}
    for detail in body.get("error", {}).get("details", []) or []:
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def is_transient(error: BaseException) -> bool:
    """Failures that say the provider is struggling (they count for the breaker)."""
    if isinstance(error, errors.APIError):
        return error.code in RETRYABLE_STATUS
    return isinstance(error, TimeoutError | aiohttp.ClientError | ConnectionError)


def error_kind(error: BaseException) -> str:
    """A short fixed name for why a call failed (a metrics label)."""
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, errors.APIError):
        if error.code == 429:
            return "rate_limited"
        if error.code in UNAVAILABLE_MODEL_STATUS:
            return "model_unavailable"
        return "server" if error.code in RETRYABLE_STATUS else "refused"
    return "timeout" if isinstance(error, TimeoutError) else "network"


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
        )
        self.client = genai.Client(api_key=api_key, http_options=options)
        self.breaker = breaker
        self.model = model
        self.fallback_models = tuple(fallback_models)
        self.timeout = timeout
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.metrics = metrics or Metrics()

    async def close(self) -> None:
        await self.client.aio.aclose()
        await self.session.close()

    def models_for(self, preferred: str | None) -> list[str]:
        chain = [preferred or self.model, self.model, *self.fallback_models]
        return list(dict.fromkeys(chain))

    async def stream(
        self,
        contents: list[types.ContentDict],
        *,
        system: str | None = None,
        model: str | None = None,
        reply: Reply | None = None,
    ) -> AsyncIterator[str]:
        """Yield text pieces as they arrive; `reply` collects model, text and usage.

        Retries and fallbacks happen only before the first piece: once text has
        been shown, a failure ends the stream with an `AIError`.
        """
        reply = reply if reply is not None else Reply()
        config = _config(system)
        chunks, first = await self._with_retries(
            lambda name: self._open_stream(name, contents, config), model, reply
        )
        try:
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
        except (errors.APIError, TimeoutError, aiohttp.ClientError) as error:
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

    async def generate(
        self,
        contents: list[types.ContentDict],
        *,
        system: str | None = None,
        model: str | None = None,
    ) -> Reply:
        """A whole reply at once (for summaries and background work)."""
        reply = Reply()
        config = _config(system)

        async def request(name: str) -> types.GenerateContentResponse:
            async with asyncio.timeout(self.timeout):
                return await self.client.aio.models.generate_content(
                    model=name, contents=contents, config=config
                )

        response = await self._with_retries(request, model, reply)
        self._take(response, reply)
        self.metrics.tokens(reply.usage.prompt_tokens, reply.usage.output_tokens)
        return reply

    async def _open_stream(
        self,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfigDict | None,
    ) -> tuple[AsyncIterator[types.GenerateContentResponse], types.GenerateContentResponse]:
        """Start a stream and wait for its first chunk (so failures can still be retried)."""
        async with asyncio.timeout(self.timeout):
            chunks = await self.client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            try:
                return chunks, await anext(chunks)
            except BaseException:
                await chunks.aclose()
                raise

    async def _with_retries(
        self, request: Callable[[str], Awaitable[Any]], preferred: str | None, reply: Reply
    ) -> Any:
        last_error: BaseException | None = None
        for model in self.models_for(preferred):
            for attempt in range(self.max_retries + 1):
                try:
                    async with self.breaker:
                        result = await request(model)
                except CircuitOpenError as error:
                    self.metrics.gemini_error(error_kind(error))
                    raise AIUnavailableError(error.retry_after) from error
                except errors.APIError as error:
                    self.metrics.gemini_error(error_kind(error))
                    last_error = error
                    if error.code in UNAVAILABLE_MODEL_STATUS:
                        log.warning(
                            "model %s is unavailable (%s); trying the next", model, error.code
                        )
                        break
                    if error.code not in RETRYABLE_STATUS:
                        log.error("Gemini refused the request: %s %s", error.code, error.message)
                        raise AIError("The AI could not process that message.") from error
                    await self._backoff(attempt, model, error, retry_delay(error))
                except (TimeoutError, aiohttp.ClientError) as error:
                    self.metrics.gemini_error(error_kind(error))
                    last_error = error
                    await self._backoff(attempt, model, error, None)
                else:
                    reply.model = model
                    return result
            else:
                # Retries exhausted on a model that exists: the others won't fare better.
                break
        if self.breaker.retry_after:
            raise AIUnavailableError(self.breaker.retry_after) from last_error
        raise AIError("The AI is not answering right now; please try again later.") from last_error

    async def _backoff(
        self, attempt: int, model: str, error: BaseException, asked: float | None
    ) -> None:
        if attempt >= self.max_retries:
            return
        delay = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        if asked is not None:
            delay = min(self.max_delay, asked + delay / 4)
        log.info("Gemini %s failed (%r); retry %d in %.2f s", model, error, attempt + 1, delay)
        await self._sleep(delay)

    @staticmethod
    def _take(response: types.GenerateContentResponse, reply: Reply) -> str:
        """Add a response's text and usage to `reply`; return the text."""
        text = response.text or ""
        reply.text += text
        reply.usage.add(response.usage_metadata)
        return text


def _config(system: str | None) -> types.GenerateContentConfigDict | None:
    return {"system_instruction": system} if system else None


def _session(base_url: str) -> aiohttp.ClientSession:
    """The HTTP session for Gemini, with any proxy the environment names for
    `base_url` looked up once.

    google-genai's default session trusts the environment on every request, which
    costs two thread-pool round trips per request (a proxy and a netrc lookup).
    """
    try:
        proxy, proxy_auth = get_env_proxy_for_url(URL(base_url))
    except LookupError:
        proxy, proxy_auth = None, None
    return aiohttp.ClientSession(proxy=proxy, proxy_auth=proxy_auth)
