"""JSON bodies the fake Gemini server answers with, in the REST API's camelCase shapes.

Kept apart from :mod:`tests.fakes.gemini_server` so the server reads as routing and
scripting; these are pure functions of their arguments.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "API key not valid. Please pass a valid API key.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}


def message(status: int) -> str:
    """Google's usual message for an HTTP error status."""
    return _MESSAGES.get(status, "Unknown error.")


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event as ``streamGenerateContent?alt=sse`` frames it."""
    return f"data: {json.dumps(payload)}\r\n\r\n".encode()


def error_body(
    status: int, text: str, retry_delay: float | None, model: str, reason: str | None = None
) -> dict[str, Any]:
    """Google's ``{"error": {...}}``; a 429 names its quota, ``retry_delay`` adds RetryInfo
    and ``reason`` ErrorInfo (what Google sends for a bad key: ``API_KEY_INVALID``)."""
    details: list[dict[str, Any]] = []
    if reason is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if status == 429:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            }
        )
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay:g}s"}
        )
    error: dict[str, Any] = {
        "code": status,
        "message": text,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def grounding_metadata(text: str, sources: list[tuple[str, str]], queries: list[str]) -> dict:
    """``groundingMetadata`` of a Google Search grounded answer ``text``.

    Each sentence gets a support citing one source in turn. Segment offsets count
    UTF-8 bytes, and a zero ``startIndex`` is left out, as proto JSON drops defaults.
    """
    supports = []
    for i, match in enumerate(re.finditer(r"[^.!?]+[.!?]*", text)):
        sentence = match.group().strip()
        if not sentence or not sources:
            continue
        start = len(text[: match.start() + match.group().index(sentence)].encode())
        segment: dict[str, Any] = {"endIndex": start + len(sentence.encode()), "text": sentence}
        if start:
            segment["startIndex"] = start
        supports.append({"segment": segment, "groundingChunkIndices": [i % len(sources)]})
    chips = "".join(
        f'<a class="chip" href="https://www.google.com/search?q={urllib.parse.quote_plus(q)}">'
        f"{html.escape(q)}</a>"
        for q in queries
    )
    metadata: dict[str, Any] = {
        "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in sources],
        "groundingSupports": supports,
        "webSearchQueries": queries,
    }
    if queries:
        metadata["searchEntryPoint"] = {
            "renderedContent": "<style>.container{display:flex}.chip{padding:4px}</style>"
            f'<div class="container"><div class="carousel">{chips}</div></div>'
        }
    return metadata


def url_context_metadata(urls: list[str] | dict[str, str]) -> dict[str, Any]:
    """``urlContextMetadata`` for URLs the ``url_context`` tool read successfully (a
    list), or tried to read (a dict: URL to how it went, "SUCCESS", "ERROR", "PAYWALL"...)."""
    statuses = urls if isinstance(urls, dict) else dict.fromkeys(urls, "SUCCESS")
    return {
        "urlMetadata": [
            {"retrievedUrl": url, "urlRetrievalStatus": f"URL_RETRIEVAL_STATUS_{status}"}
            for url, status in statuses.items()
        ]
    }
