"""A local Gemini REST API server for tests, driven by the real google-genai client.

Point ``genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.url))``
at a started :class:`FakeGemini` and script its answers: text (whole or streamed in
chunks, optionally grounded by Google Search or URL context), turns of function
calls with thought signatures, Google-shaped errors, dropped connections, hangs,
streams that break or stall mid-way, replies that end with another ``finishReason``
(``SAFETY``, ``MAX_TOKENS``, ...) or none, prompts refused through
``promptFeedback.blockReason`` and raw bodies (an empty stream, one that is not JSON).
Every request is recorded in :attr:`FakeGemini.requests`; :class:`GeminiRequest`
reads the tools, function responses and texts it carries.

Routes are ``POST /{version}/models/{model}:{method}`` for ``v1``, ``v1beta`` and
``v1alpha`` (google-genai 1.x/2.x call ``v1beta``, 3.x calls ``v1``). Methods:
``generateContent``, ``streamGenerateContent`` (``?alt=sse``), ``batchEmbedContents``
and ``countTokens``. Scripts only answer the two generate methods; embeddings and
token counts are always computed, so they never consume a script.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import math
import re
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import gemini_payloads as payloads
from tests.fakes.gemini_request import GeminiRequest, texts

_GENERATE = frozenset({"generateContent", "streamGenerateContent"})
_METHODS = _GENERATE | {"batchEmbedContents", "countTokens"}


def _tokens(text: str) -> int:
    """Estimate a token count the way the fake reports usage: ``len // 4 + 1``."""
    return len(text) // 4 + 1


def _embedding(text: str, dim: int) -> list[float]:
    """Return a deterministic unit vector of ``dim`` floats derived from a hash of ``text``."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dim)
    values = [v / 32768 for v in struct.unpack(f"<{dim}h", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


@dataclass(frozen=True)
class _Reply:
    parts: list[dict[str, Any]]  # one part per stream chunk
    chunk_delay: float = 0.0
    usage: dict[str, int] | None = None
    finish_reason: str | None = "STOP"
    metadata: dict[str, Any] = field(default_factory=dict)  # for the final chunk's candidate


@dataclass(frozen=True)
class _Blocked:
    reason: str


@dataclass(frozen=True)
class _Fail:
    status: int
    message: str
    retry_delay: float | None
    retry_after: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Drop:
    pass


@dataclass(frozen=True)
class _Raw:
    body: bytes
    status: int = 200


@dataclass(frozen=True)
class _Hang:
    seconds: float


@dataclass(frozen=True)
class _BrokenStream:
    chunks: list[str]
    status: int | None


@dataclass(frozen=True)
class _StalledStream:
    chunks: list[str]
    seconds: float


_Script = _Reply | _Fail | _Drop | _Hang | _BrokenStream | _StalledStream | _Blocked | _Raw


class FakeGemini:
    """A scriptable Gemini API on ``127.0.0.1``; start it, point a client at :attr:`url`.

    Scripts queue in order; ``model=`` scripts are used first by requests for that
    model, then the shared queue. With both empty a request gets ``default(request)``
    (``"ok"`` when ``default`` is None). Models in ``model_unavailable`` answer
    404 NOT_FOUND without consuming scripts, which suits fallback-chain tests.

    Requests Gemini would refuse get its 400 INVALID_ARGUMENT, also without
    consuming a script: contents that open with a model turn; function responses
    that do not answer every call of the turn before them; with
    ``require_thought_signatures`` (Gemini 3) a function-call turn of the current
    exchange whose first call lacks the ``thoughtSignature`` this fake issued; with
    ``reject_mixed_tools`` (Gemini 2.x) function declarations next to a built-in tool
    such as ``googleSearch``.

    Every request is kept in :attr:`requests` unless ``record`` is False (a long
    benchmark: a heap of old requests makes the collector pause the fake).
    """

    def __init__(
        self, *, stream_chunks: int = 3, embedding_dim: int = 8, record: bool = True
    ) -> None:
        self.stream_chunks = stream_chunks
        self.embedding_dim = embedding_dim
        self.record = record
        self.requests: list[GeminiRequest] = []
        self.default: Callable[[GeminiRequest], str] | None = None
        self.model_unavailable: set[str] = set()
        self.require_thought_signatures = False
        self.reject_mixed_tools = False
        self._signatures: set[bytes] = set()
        self._calls = itertools.count(1)
        self._scripts: dict[str | None, deque[_Script]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL for ``HttpOptions(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._closing.clear()
        app = web.Application()
        app.router.add_post(r"/{version:v1(?:alpha|beta)?}/models/{model}:{method}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Drop hanging requests and close the server."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGemini:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # Scripting

    def reply(
        self,
        text: str | list[str],
        *,
        chunk_delay: float = 0.0,
        usage: dict[str, int] | None = None,
        model: str | None = None,
        finish_reason: str | None = "STOP",
        grounding: list[tuple[str, str]] | None = None,
        search_queries: list[str] | None = None,
        url_context: list[str] | dict[str, str] | None = None,
    ) -> None:
        """Queue a text answer.

        A list gives the exact stream chunks (``generateContent`` joins them); a
        string is split at word starts into about ``stream_chunks`` chunks.
        ``chunk_delay`` is slept before every chunk (a non-streamed answer waits
        the sum). ``usage`` overrides fields of the estimated ``usageMetadata``.
        The last chunk carries ``finish_reason`` (``"SAFETY"``, ``"MAX_TOKENS"``...);
        an empty last chunk of a stopped reply has no ``content``, as Google sends a
        block. None sends no finish reason (nor usage): a stream cut short that still
        ends cleanly, as a proxy may cut it.

        ``grounding`` (``(uri, title)`` web sources) and ``search_queries`` make it a
        Google Search grounded answer: the last chunk's candidate gets
        ``groundingMetadata``. ``url_context`` lists URLs the ``url_context`` tool
        read (or maps each to how it went: "ERROR", "PAYWALL"...); they go to
        ``urlContextMetadata``.
        """
        parts = self._text_parts(text)
        metadata: dict[str, Any] = {}
        if grounding or search_queries:
            full = "".join(p["text"] for p in parts)
            metadata["groundingMetadata"] = payloads.grounding_metadata(
                full, grounding or [], search_queries or []
            )
        if url_context:
            metadata["urlContextMetadata"] = payloads.url_context_metadata(url_context)
        self._push(model, _Reply(parts, chunk_delay, usage, finish_reason, metadata))

    def block_prompt(self, reason: str = "SAFETY", *, model: str | None = None) -> None:
        """Queue a refusal of the prompt: no candidates, ``promptFeedback.blockReason``."""
        self._push(model, _Blocked(reason))

    def reply_function_call(
        self, name: str, args: dict[str, Any], *, model: str | None = None
    ) -> None:
        """Queue an answer that is a single ``functionCall`` part."""
        self.reply_function_calls([(name, args)], model=model)

    def reply_function_calls(
        self,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        text: str | None = None,
        model: str | None = None,
        thought_signature: bool = True,
        call_ids: bool = True,
        chunk_delay: float = 0.0,
    ) -> None:
        """Queue one model turn: ``text`` parts (if any), then a ``functionCall`` per call
        (``chunk_delay`` is slept before every chunk, as for :meth:`reply`).

        As Gemini 3 answers: every call has an ``id`` (``call_ids=False`` gives the
        id-less calls of Gemini 2.x) and the first carries a base64 ``thoughtSignature``
        the fake remembers for ``require_thought_signatures``. Streamed, the text comes
        in chunks and each call whole in a chunk of its own; ``STOP`` is on the last.
        """
        parts = self._text_parts(text) if text else []
        for i, (name, args) in enumerate(calls):
            n = next(self._calls)
            call: dict[str, Any] = {"name": name, "args": args}
            if call_ids:
                call["id"] = hashlib.sha256(f"call {n}".encode()).hexdigest()[:8]
            part: dict[str, Any] = {"functionCall": call}
            if thought_signature and i == 0:
                signature = hashlib.sha256(f"thought {n}".encode()).digest()
                self._signatures.add(signature)
                part["thoughtSignature"] = base64.b64encode(signature).decode()
            parts.append(part)
        self._push(model, _Reply(parts, chunk_delay))

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_delay: float | None = None,
        retry_after: float | None = None,
        message: str | None = None,
        model: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Queue ``times`` error answers in Google's ``{"error": {...}}`` shape.

        A 429 carries a ``QuotaFailure`` detail; ``retry_delay`` adds a
        ``google.rpc.RetryInfo`` detail (``"retryDelay": "1.5s"``) to any status,
        ``reason`` a ``google.rpc.ErrorInfo`` one (``API_KEY_INVALID``), and
        ``retry_after`` a ``Retry-After`` header (seconds), as a proxy may send.
        """
        text = message or payloads.message(status)
        for _ in range(times):
            self._push(model, _Fail(status, text, retry_delay, retry_after, reason))

    def drop(self, *, model: str | None = None) -> None:
        """Close the next request's connection without answering (the client sees the
        server disconnect, as when a kept-alive connection goes stale)."""
        self._push(model, _Drop())

    def answer_raw(self, body: bytes, *, status: int = 200, model: str | None = None) -> None:
        """Queue an answer of ``body`` as it is: with status 200 an empty stream
        (``b""``), an event that is not JSON, bytes that are not UTF-8; with another
        status, a JSON error body that is not Google's (a proxy's)."""
        self._push(model, _Raw(body, status))

    def hang(self, seconds: float = 3600, *, model: str | None = None) -> None:
        """Leave the next request unanswered for ``seconds``, then answer with the default.

        :meth:`stop` drops the connection of a request still hanging.
        """
        self._push(model, _Hang(seconds))

    def fail_stream_after(
        self, chunks: list[str], status: int | None = 500, *, model: str | None = None
    ) -> None:
        """Queue a stream that sends ``chunks`` and then breaks.

        With a ``status`` the stream ends with an in-band ``{"error": ...}`` event
        (the SDK raises the matching ``APIError``); with None the connection just
        drops. A non-streamed request answers the error status (500 for None).
        """
        self._push(model, _BrokenStream(chunks, status))

    def stall_stream_after(
        self, chunks: list[str], seconds: float = 3600, *, model: str | None = None
    ) -> None:
        """Queue a stream that sends ``chunks`` and then goes silent for ``seconds``.

        The connection stays open (a model that hangs mid-reply); after ``seconds``,
        or at :meth:`stop`, it drops. A non-streamed request just hangs that long.
        """
        self._push(model, _StalledStream(chunks, seconds))

    def _push(self, model: str | None, script: _Script) -> None:
        self._scripts.setdefault(model, deque()).append(script)

    def _pop(self, model: str) -> _Script | None:
        for key in (model, None):
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
        return None

    def _text_parts(self, text: str | list[str]) -> list[dict[str, Any]]:
        chunks = text if isinstance(text, list) else self._split(text)
        return [{"text": c} for c in chunks or [""]]

    def _split(self, text: str) -> list[str]:
        words = re.split(r"(?<=\s)(?=\S)", text)
        size = max(1, math.ceil(len(words) / self.stream_chunks))
        return ["".join(words[i : i + size]) for i in range(0, len(words), size)]

    # Serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        info = request.match_info
        body = await request.json() if request.can_read_body else {}
        req = GeminiRequest(
            version=info["version"],
            model=info["model"],
            method=info["method"],
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            json=body,
            time=arrived,
        )
        if self.record:
            self.requests.append(req)
        if req.method not in _METHODS:
            return self._error(404, f"Method {req.method} not found.")
        if req.model in self.model_unavailable:
            return self._error(
                404,
                f"models/{req.model} is not found for API version {req.version}, "
                f"or is not supported for {req.method}.",
            )
        if req.method == "countTokens":
            return web.json_response({"totalTokens": _tokens("".join(texts(body)))})
        if req.method == "batchEmbedContents":
            return web.json_response({"embeddings": [self._embed(r) for r in body["requests"]]})
        refusal = req.refusal(
            self._signatures,
            require_signatures=self.require_thought_signatures,
            reject_mixed_tools=self.reject_mixed_tools,
        )
        if refusal:
            return self._error(400, refusal)
        return await self._generate(request, req, self._pop(req.model))

    async def _generate(
        self, request: web.Request, req: GeminiRequest, script: _Script | None
    ) -> web.StreamResponse:
        stream = req.method == "streamGenerateContent"
        match script:
            case None:
                text = self.default(req) if self.default else "ok"
                return await self._answer(request, req, _Reply(self._text_parts(text)))
            case _Reply():
                return await self._answer(request, req, script)
            case _Blocked(reason):
                payload = {
                    "promptFeedback": {"blockReason": reason, "safetyRatings": []},
                    "usageMetadata": self._usage(req, _Reply([])),
                    "modelVersion": req.model,
                }
                if not stream:
                    return web.json_response(payload)
                response = await self._open_stream(request)
                await response.write(payloads.sse(payload))
                await response.write_eof()
                return response
            case _Raw(body, status):
                if not stream or status != 200:
                    return web.Response(status=status, body=body, content_type="application/json")
                response = await self._open_stream(request)
                await response.write(body)
                await response.write_eof()
                return response
            case _Fail(status, message, retry_delay, retry_after, reason):
                error = self._error(status, message, retry_delay, req.model, reason)
                if retry_after is not None:
                    error.headers["Retry-After"] = f"{retry_after:g}"
                return error
            case _Drop():
                return self._drop(request, web.Response())
            case _Hang(seconds):
                try:
                    await asyncio.wait_for(self._closing.wait(), seconds)
                except TimeoutError:
                    return await self._generate(request, req, None)
                return self._drop(request, web.Response())
            case _BrokenStream(chunks, status) if stream:
                response = await self._open_stream(request)
                with contextlib.suppress(ConnectionError):
                    for chunk in chunks:
                        await response.write(
                            payloads.sse(self._chunk(req, [{"text": chunk}], final=None))
                        )
                    if status is not None:
                        error = payloads.error_body(
                            status, payloads.message(status), None, req.model
                        )
                        await response.write(payloads.sse(error))
                return self._drop(request, response)
            case _BrokenStream(_, status):
                return self._error(status or 500, payloads.message(status or 500))
            case _StalledStream(chunks, seconds):
                response = await self._open_stream(request) if stream else web.Response()
                with contextlib.suppress(ConnectionError):
                    for chunk in chunks if stream else []:
                        await response.write(
                            payloads.sse(self._chunk(req, [{"text": chunk}], final=None))
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), seconds)
                return self._drop(request, response)

    async def _answer(
        self, request: web.Request, req: GeminiRequest, reply: _Reply
    ) -> web.StreamResponse:
        usage = self._usage(req, reply)
        if req.method == "generateContent":
            await asyncio.sleep(reply.chunk_delay * len(reply.parts))
            parts = self._merge(reply.parts)
            return web.json_response(
                self._chunk(
                    req, parts, final=reply.finish_reason, usage=usage, extra=reply.metadata
                )
            )
        response = await self._open_stream(request)
        with contextlib.suppress(ConnectionError):  # the client may stop reading mid-stream
            for i, part in enumerate(reply.parts):
                await asyncio.sleep(reply.chunk_delay)
                final = reply.finish_reason if i == len(reply.parts) - 1 else None
                chunk = self._chunk(req, [part], final=final, usage=usage, extra=reply.metadata)
                await response.write(payloads.sse(chunk))
            await response.write_eof()
        return response

    @staticmethod
    async def _open_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    @staticmethod
    def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Abort the connection; aiohttp then skips writing ``response`` quietly."""
        if request.transport is not None:
            request.transport.abort()
        return response

    @staticmethod
    def _merge(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Join consecutive text parts, as a non-streamed answer carries them."""
        merged: list[dict[str, Any]] = []
        for part in parts:
            if "text" in part and merged and "text" in merged[-1]:
                merged[-1] = {"text": merged[-1]["text"] + part["text"]}
            else:
                merged.append(part)
        return merged

    @staticmethod
    def _chunk(
        req: GeminiRequest,
        parts: list[dict[str, Any]],
        *,
        final: str | None,
        usage: dict[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One response (or stream chunk); ``final`` is the finish reason of the last.

        The last also carries the ``usage`` and the candidate fields in ``extra``.
        """
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        payload: dict[str, Any] = {"candidates": [candidate]}
        if final:
            if final != "STOP" and parts == [{"text": ""}]:
                del candidate["content"]  # a blocked reply comes without content
            candidate["finishReason"] = final
            candidate.update(extra or {})
            payload["usageMetadata"] = usage
        payload["modelVersion"] = req.model
        return payload

    @staticmethod
    def _usage(req: GeminiRequest, reply: _Reply) -> dict[str, int]:
        prompt = _tokens(
            "".join(texts([req.json.get("systemInstruction"), req.json.get("contents")]))
        )
        answer = _tokens(
            "".join(
                p["text"] if "text" in p else json.dumps(p.get("functionCall")) for p in reply.parts
            )
        )
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": answer,
            "totalTokenCount": prompt + answer,
        }
        return usage | (reply.usage or {})

    def _embed(self, item: dict[str, Any]) -> dict[str, list[float]]:
        dim = item.get("outputDimensionality", self.embedding_dim)
        return {"values": _embedding("".join(texts(item.get("content", {}))), dim)}

    def _error(
        self,
        status: int,
        message: str,
        retry_delay: float | None = None,
        model: str = "",
        reason: str | None = None,
    ) -> web.Response:
        return web.json_response(
            payloads.error_body(status, message, retry_delay, model, reason), status=status
        )
