"""What a Gemini call gives back: the `Reply` with its `Usage`, or an error safe to show.

`AIError` is any failure users may see; `AIUnavailableError` says when to try again
(`AIBusyError`: the model is rate limited for longer than a reply waits);
`ReplyStopped` says why Google ended a reply early or refused the prompt (the finish
and block reasons map to a stored reason and a user-facing phrase). The provider
(`utils.gemini`) fills these in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.genai import types

from utils.errors import BotError
from utils.text import wait_words


class AIError(BotError):
    """The model could not answer; the message is safe to show."""


class AIUnavailableError(AIError):
    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = retry_after
        wait = max(1, round(retry_after))
        super().__init__(message or f"AI is unavailable, try again in {wait} s.")


class AIBusyError(AIUnavailableError):
    """The model asks for a wait longer than a reply keeps someone waiting (a rate limit,
    `utils.gemini.PATIENCE`): they are told when to try again instead."""

    def __init__(self, retry_after: float) -> None:
        when = wait_words(max(1.0, retry_after))  # never "in 0 seconds" (a `Retry-After: 0`)
        super().__init__(retry_after, f"The AI model is busy; please try again in {when}.")


# A model turn that tried to call a tool and got the call wrong (worth asking again).
MALFORMED_CALL = "malformed_call"
# Why Google stopped a reply early: finish reason -> (stored reason, what users are told).
_FINISH_REASONS = {
    "MALFORMED_FUNCTION_CALL": (MALFORMED_CALL, "cut short by a malformed tool call"),
    "MAX_TOKENS": ("length", "cut at the length limit"),
    "SAFETY": ("safety", "blocked by the safety filter"),
    "IMAGE_SAFETY": ("safety", "blocked by the safety filter"),
    "RECITATION": ("recitation", "blocked for repeating a protected source"),
    "IMAGE_RECITATION": ("recitation", "blocked for repeating a protected source"),
    "PROHIBITED_CONTENT": ("prohibited", "blocked as prohibited content"),
    "IMAGE_PROHIBITED_CONTENT": ("prohibited", "blocked as prohibited content"),
    "BLOCKLIST": ("blocklist", "blocked by a list of forbidden terms"),
    "SPII": ("spii", "blocked for sensitive personal information"),
    "LANGUAGE": ("language", "stopped: the language is not supported"),
}
_FINISHED = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED"})
_OTHER_STOP = ("stopped", "stopped by the AI service")
# A prompt Google refused to answer at all (`prompt_feedback.block_reason`).
_BLOCK_REASONS = {
    "SAFETY": ("safety", "blocked by the safety filter"),
    "IMAGE_SAFETY": ("safety", "blocked by the safety filter"),
    "BLOCKLIST": ("blocklist", "blocked by a list of forbidden terms"),
    "PROHIBITED_CONTENT": ("prohibited", "blocked as prohibited content"),
}
_OTHER_BLOCK = ("blocked", "blocked by the AI service's filters")
# Why a reply stopped before its first words, where "the reply was ..." would not read right.
_UNSTARTED = {"length": "the AI reached its length limit before writing anything"}


class ReplyStopped(AIError):
    """Google ended a reply early or refused the prompt; `reason` is what history stores,
    `prompt` whether the prompt was refused; `hint` follows the message."""

    def __init__(
        self, reason: str, why: str, *, prompt: bool, partial: bool, hint: str = ""
    ) -> None:
        self.reason = reason
        self.why = why
        self.prompt = prompt
        if partial:
            message = f"reply {why}"
        elif prompt:
            message = f"I can't answer that: your message was {why}."
        else:
            message = f"I can't answer that: {_UNSTARTED.get(reason, f'the reply was {why}')}."
        super().__init__(f"{message} {hint}".rstrip())


@dataclass
class Usage:
    """Tokens as Google bills them: input (the prompt and what its own tools added to it)
    and output (the reply and the model's thinking)."""

    prompt_tokens: int = 0
    output_tokens: int = 0

    def add(self, metadata: types.GenerateContentResponseUsageMetadata | None) -> None:
        """Record the latest totals (Gemini reports running totals per chunk)."""
        if metadata is None:
            return
        prompt = (metadata.prompt_token_count or 0) + (metadata.tool_use_prompt_token_count or 0)
        output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
        self.prompt_tokens = prompt or self.prompt_tokens
        self.output_tokens = output or self.output_tokens


@dataclass
class Reply:
    """What a finished or in-progress generation produced so far."""

    model: str = ""
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    block_reason: str | None = None
    parts: list[types.Part] = field(default_factory=list)  # the model's turn as it came
    calls: list[types.FunctionCall] = field(default_factory=list)  # tools it asks to run
    sources: list[tuple[str, str]] = field(default_factory=list)  # (title, uri) it drew on
    # How each page Google's url_context tool tried went ("URL_RETRIEVAL_STATUS_SUCCESS"...)
    url_statuses: list[str] = field(default_factory=list)

    def model_turn(self) -> types.Content:
        """The model's turn to send back with the results of its calls: its parts as they
        came (signatures included), the pieces of streamed text joined."""
        parts: list[types.Part] = []
        for part in self.parts:
            previous = parts[-1] if parts else None
            if _plain_text(part) and previous is not None and _plain_text(previous):
                parts[-1] = types.Part(text=(previous.text or "") + (part.text or ""))
            else:
                parts.append(part)
        return types.Content(role="model", parts=parts)

    def stopped(self) -> ReplyStopped | None:
        """Why Google ended this reply early, or None for a whole reply."""
        if self.block_reason:
            reason, why = _BLOCK_REASONS.get(self.block_reason, _OTHER_BLOCK)
            return ReplyStopped(reason, why, prompt=True, partial=bool(self.text.strip()))
        if self.finish_reason and self.finish_reason not in _FINISHED:
            reason, why = _FINISH_REASONS.get(self.finish_reason, _OTHER_STOP)
            return ReplyStopped(reason, why, prompt=False, partial=bool(self.text.strip()))
        return None


def _plain_text(part: types.Part) -> bool:
    fields = part.model_dump(exclude_none=True)
    return set(fields) == {"text"}
