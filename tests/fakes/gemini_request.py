"""What a request to the fake Gemini server asked for, and whether Gemini would refuse it."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def texts(node: Any) -> Iterator[str]:
    """Yield every string stored under a ``"text"`` key anywhere in a JSON value."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def _snake(name: str) -> str:
    """``googleSearch`` -> ``google_search``; the REST API takes either spelling."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _signature(part: dict[str, Any]) -> bytes | None:
    """The decoded ``thoughtSignature`` of a part; clients may send URL-safe base64."""
    encoded = part.get("thoughtSignature", "").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return None


@dataclass(frozen=True)
class GeminiRequest:
    """One request as the fake received it.

    ``headers`` has lower-case names; ``json`` is the decoded body; ``time`` is
    ``time.monotonic()`` on arrival.
    """

    version: str
    model: str
    method: str
    headers: dict[str, str]
    query: dict[str, str]
    json: dict[str, Any]
    time: float

    @property
    def api_key(self) -> str | None:
        """The key the client sent in ``x-goog-api-key``."""
        return self.headers.get("x-goog-api-key")

    @property
    def contents(self) -> list[dict[str, Any]]:
        """The ``contents`` turns of a generate request."""
        return self.json.get("contents", [])

    @property
    def system_text(self) -> str:
        """All text of ``systemInstruction`` joined, or ``""``."""
        return "".join(texts(self.json.get("systemInstruction", {})))

    @property
    def last_user_text(self) -> str:
        """All text of the last ``user`` turn joined, or ``""``."""
        for turn in reversed(self.contents):
            if turn.get("role", "user") == "user":
                return "".join(texts(turn))
        return ""

    @property
    def function_responses(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, response)`` of every ``functionResponse`` part of ``contents``, in order."""
        return [
            (part["functionResponse"]["name"], part["functionResponse"].get("response", {}))
            for turn in self.contents
            for part in turn.get("parts", [])
            if "functionResponse" in part
        ]

    @property
    def declared_functions(self) -> list[str]:
        """Names of the functions declared in ``tools[].functionDeclarations``."""
        return [
            declaration["name"]
            for tool in self.json.get("tools", [])
            for declaration in tool.get("functionDeclarations", [])
        ]

    @property
    def builtin_tools(self) -> set[str]:
        """Gemini's own tools enabled in ``tools``, snake_case: ``{"google_search", ...}``."""
        names = {_snake(key) for tool in self.json.get("tools", []) for key in tool}
        return names - {"function_declarations"}

    @property
    def function_calling_mode(self) -> str | None:
        """``toolConfig.functionCallingConfig.mode`` (``"AUTO"``, ``"ANY"``, ``"NONE"``...)."""
        return self.json.get("toolConfig", {}).get("functionCallingConfig", {}).get("mode")

    def refusal(
        self, signatures: set[bytes], *, require_signatures: bool, reject_mixed_tools: bool
    ) -> str | None:
        """The message of the 400 Gemini answers this request with, or None when it is valid.

        ``signatures`` are the thought signatures the fake issued.
        """
        if reject_mixed_tools and self.declared_functions and self.builtin_tools:
            return "Tool use with function calling is unsupported by the model."
        contents = self.contents
        if contents and contents[0].get("role", "user") != "user":
            return "Please ensure that multiturn requests alternate between user and model."
        # Gemini 3 checks signatures in the current exchange: since the last user message
        # that is not function responses.
        exchange = max(
            (
                i
                for i, turn in enumerate(contents)
                if turn.get("role", "user") == "user"
                and not any("functionResponse" in p for p in turn.get("parts", []))
            ),
            default=-1,
        )
        for i, turn in enumerate(contents):
            calls = [p for p in turn.get("parts", []) if "functionCall" in p]
            if not calls:
                continue
            following = contents[i + 1].get("parts", []) if i + 1 < len(contents) else []
            answers = sum("functionResponse" in p for p in following)
            if answers and answers != len(calls):
                return (
                    "Please ensure that the number of function response parts is equal "
                    "to the number of function call parts of the function call turn."
                )
            if require_signatures and i > exchange and _signature(calls[0]) not in signatures:
                return (
                    "Function call is missing a thought_signature in functionCall parts. "
                    "This is required for tools to work correctly, and missing "
                    "thought_signature may lead to degraded model performance. Additional "
                    f"data, function call `default_api:{calls[0]['functionCall']['name']}` "
                    f", position {i + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
        return None
