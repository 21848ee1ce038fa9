"""What a failed Gemini call means: worth another try, how long to wait, whose fault.

`GeminiProvider` (`utils.gemini`) decides with these; the breaker counts what
`is_transient` calls the provider struggling, and metrics label failures by
`error_kind`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from google.genai import errors

from utils.reliability.circuit_breaker import CircuitOpenError

REFUSED_KEY = "The AI service refused the bot's API key; the bot's owner needs to check it."
REFUSED_ACCOUNT = (
    "The AI service refused the bot's account (its region or billing); "
    "the bot's owner needs to check it."
)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
UNAVAILABLE_MODEL_STATUS = frozenset({404})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")  # Retry-After's other form is a date


class IncompleteAnswer(Exception):
    """A stream that ended before its first words, or later without a finish reason."""


# Answers that can't be read: incomplete, not JSON (a cut event: the SDK raises
# UnknownApiResponseError; a whole answer or a proxy's error page sent as JSON that is not:
# JSONDecodeError) or not UTF-8.
UNREADABLE = (
    IncompleteAnswer,
    errors.UnknownApiResponseError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)
# Failures worth another try (before a stream's first words; after them, they cut the reply).
FAILED_TRY = (TimeoutError, aiohttp.ClientError, *UNREADABLE)


def _details(error: errors.APIError) -> list[dict[str, Any]]:
    """The `details` of Google's error body; none from a body of another shape (a
    proxy's `{"error": "busy"}`)."""
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error")
    details = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def retry_delay(error: errors.APIError) -> float | None:
    """How long to wait before another try, in seconds: the `RetryInfo.retryDelay` Google
    sent with an error, else a `Retry-After` header in seconds (a proxy's, say)."""
    for detail in _details(error):
        if not str(detail.get("@type")).endswith("RetryInfo"):
            continue
        if match := _DURATION.match(str(detail.get("retryDelay", ""))):
            return float(match[1])
    headers = getattr(error.response, "headers", None) or {}
    if match := _SECONDS.match(str(headers.get("Retry-After", ""))):
        return float(match[1])
    return None


def is_quota(error: errors.APIError) -> bool:
    """A 429 saying this model's quota is used up (Google sends RESOURCE_EXHAUSTED)."""
    return error.code == 429 and error.status == "RESOURCE_EXHAUSTED"


def refusal(error: errors.APIError) -> str:
    """What users are told of a request Google refused, naming whose it is to fix: the key
    (invalid, expired, or not allowed this API) and the account (a region Google does not
    serve, a free tier not offered there: FAILED_PRECONDITION) are the owner's."""
    if error.code in (401, 403) or any(
        detail.get("reason") == "API_KEY_INVALID" for detail in _details(error)
    ):
        return REFUSED_KEY
    if error.status == "FAILED_PRECONDITION":
        return REFUSED_ACCOUNT
    return "The AI could not process that message."


def is_transient(error: BaseException) -> bool:
    """Failures that say the provider is struggling (they count for the breaker)."""
    if isinstance(error, errors.APIError):
        return error.code in RETRYABLE_STATUS
    return isinstance(error, (TimeoutError, aiohttp.ClientError, ConnectionError, *UNREADABLE))


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
    if isinstance(error, UNREADABLE):
        return "server"
    return "timeout" if isinstance(error, TimeoutError) else "network"
