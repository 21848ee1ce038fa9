"""Text helpers for Discord messages: splitting long replies, streaming plans, truncating.

Pure functions with no Discord import, so they are testable alone.

Splitting guarantee (:func:`split_message`): every chunk is at most ``limit``
characters (the last at most ``last_limit``), not empty and not whitespace-only.
Remove from each chunk the fence lines the splitter added (a leading ``"```lang\\n"``
on chunks that continue a code block, a trailing ``"\\n```"`` on chunks that end
inside one) and the original text is ``ws0 + body1 + ws1 + body2 + ... + bodyN +
wsN`` where every ``ws`` is whitespace only (possibly empty). Only whitespace at
split points and at the ends is ever dropped; a hard cut drops nothing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

DISCORD_LIMIT = 2000
# How much of a user's input a reply repeats (a name not found, say): enough to
# recognise it, never enough to push the reply past DISCORD_LIMIT.
ECHO_LIMIT = 100

_FENCE = "```"
_CLOSE = "\n```"
_LANG = re.compile(r"([\w+#.-]{1,16})\n")  # Discord reads a language only before a newline
_FENCE_LINE = re.compile(r"```[\w+#.-]*\s*")  # an opening fence with nothing after it
_SENTENCE_END = re.compile(r"[.!?](?=\s)|[。！？]")
# Longest added fence lines: "```" + 16-char language + "\n" and "\n```".
_MIN_LIMIT = 32


class _Fence(NamedTuple):
    inside: bool = False
    lang: str = ""

    @property
    def reopen(self) -> str:
        return f"{_FENCE}{self.lang}\n" if self.inside else ""


def split_message(
    text: str, limit: int = DISCORD_LIMIT, *, last_limit: int | None = None
) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, the last of at most
    ``last_limit`` (``limit`` if None; see the module docstring).

    Each split falls on the best boundary in the chunk's second half, else anywhere:
    paragraph break, line break, sentence end (``. ! ?`` before a space, or a CJK
    full stop, exclamation or question mark), whitespace, then a hard cut that
    avoids splitting backtick runs and visible characters (a letter and its combining
    marks, an emoji sequence, a flag). A split inside a code block closes it at the
    end of the chunk and re-opens it, with its language, at the start of the next.

    Splitting is prefix-stable: for a text and any extension of it, all chunks but
    the last of the shorter text are also the first chunks of the longer one.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}, got {limit}")
    last_limit = limit if last_limit is None else last_limit
    chunks: list[str] = []
    fence = _Fence()
    rest = _skip_blank(text, limit)
    while rest:
        prefix = fence.reopen
        if len(prefix) + len(rest.rstrip()) <= last_limit:
            chunks.append(prefix + rest.rstrip())
            break
        budget = limit - len(prefix)
        cut = _cut(rest, budget)
        after = _fences(rest[: cut + 1], fence)
        if after.inside:
            cut = _cut(rest, budget - len(_CLOSE))
            after = _fences(rest[: cut + 1], fence)
        if after.inside:
            cut = _before_empty_block(rest, cut)
            after = _fences(rest[: cut + 1], fence)
        chunks.append(prefix + rest[:cut].rstrip() + (_CLOSE if after.inside else ""))
        fence = after
        rest = _skip_blank(rest[cut:], limit)
    return chunks


def _skip_blank(rest: str, limit: int) -> str:
    """Drop leading whitespace but the indentation of a line that starts on a new line.

    Indentation of ``limit // 4`` or more is dropped too, so a chunk always has room
    for a visible character.
    """
    stripped = rest.lstrip()
    lead = len(rest) - len(stripped)
    line_start = rest.rfind("\n", 0, lead) + 1
    if not stripped or line_start == 0 or lead - line_start >= limit // 4:
        return stripped
    return rest[line_start:]


def _fences(segment: str, fence: _Fence) -> _Fence:
    """Return the code-block state after ``segment``, starting from ``fence``."""
    for match in re.finditer(_FENCE, segment):
        if fence.inside:
            fence = _Fence()
        else:
            tag = _LANG.match(segment, match.end())
            fence = _Fence(True, tag.group(1) if tag else "")
    return fence


def _before_empty_block(rest: str, cut: int) -> int:
    """``cut``, or the start of the code block ``rest[:cut]`` opens last and ends inside,
    when that holds its fence line alone (closed at once, it would show an empty box)
    after some text."""
    starts = [match.start() for match in re.finditer(_FENCE, rest[:cut])]
    if starts and rest[: starts[-1]].strip() and _FENCE_LINE.fullmatch(rest, starts[-1], cut):
        return starts[-1]
    return cut


def _cut(rest: str, budget: int) -> int:
    """Return where to end a chunk body taken from ``rest`` with room for ``budget`` chars.

    Reads only ``rest[: budget + 1]``, which keeps splitting prefix-stable.
    """
    first = len(rest) - len(rest.lstrip())  # the body must reach a visible character
    window = rest[:budget]
    finders: tuple[Callable[[str, int], int], ...] = (
        lambda w, lo: w.rfind("\n\n", lo),
        lambda w, lo: w.rfind("\n", lo),
        _last_sentence_end,
        _last_space,
    )
    for low in (max(budget // 2, first + 1), first + 1):
        for find in finders:
            cut = find(window, low)
            if cut >= low:
                return cut
    cut = budget
    while cut > first + 1 and (_joins(rest, cut) or rest[cut - 1] == "`"):
        cut -= 1
    return cut


def _last_sentence_end(window: str, low: int) -> int:
    ends = [m.end() for m in _SENTENCE_END.finditer(window, low)]
    return ends[-1] if ends else -1


def _last_space(window: str, low: int) -> int:
    return next((i for i in range(len(window) - 1, low - 1, -1) if window[i].isspace()), -1)


def _joins(text: str, at: int) -> bool:
    """Whether cutting ``text`` at ``at`` would break a visible character.

    Reads only ``text[: at + 1]``."""
    before, after = text[at - 1], text[at]
    if _regional(before) and _regional(after):
        # A flag is two regional indicators; a run of them pairs up from its start.
        start = at - 1
        while start > 0 and _regional(text[start - 1]):
            start -= 1
        return (at - start) % 2 == 1
    return (
        before == "\u200d"
        or after in "\u200d\ufe0f"
        or "\U0001f3fb" <= after <= "\U0001f3ff"  # a skin tone
        or "\U000e0020" <= after <= "\U000e007f"  # the tags of a flag such as England's
        or unicodedata.category(after) in {"Mn", "Mc", "Me"}
    )


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def code_block_closer(text: str) -> str:
    """What closes a code block ``text`` leaves open ("" when it leaves none)."""
    return _CLOSE if _fences(text, _Fence()).inside else ""


def close_code_block(text: str) -> str:
    """``text``, closing a code block it leaves open."""
    return text + code_block_closer(text)


def plan(text: str, limit: int = DISCORD_LIMIT, reserve: int = 0) -> list[str]:
    """Split a growing streamed ``text`` for messages that keep ``reserve`` chars free.

    Equals ``split_message(text, limit - reserve)``; by prefix stability every chunk
    but the last is final and stays the same however the text grows.
    """
    return split_message(text, limit - reserve)


class StreamPlan(NamedTuple):
    """What a streaming sender shows: finished messages and the live one."""

    frozen: list[str]  # final chunks; a later plan starts with the same ones
    tail: str  # the live message: the last chunk, an open code block closed, the marker


class StreamSplitter:
    """Plans messages for a reply streamed into Discord, one limit-sized message at a time.

    Call :meth:`feed` with the whole text so far: send or finalise each ``frozen``
    chunk once and keep editing the last message with ``tail``. When the stream
    ends, :meth:`finish` gives the final text of every message; the last may use the
    room the marker took (a reply that fits in one message is one message).
    """

    def __init__(self, limit: int = DISCORD_LIMIT, marker: str = " ⚪") -> None:
        self.limit = limit
        self.marker = marker
        self.reserve = len(_CLOSE) + len(marker)

    def feed(self, text: str) -> StreamPlan:
        """Plan the messages for the accumulated ``text``."""
        *frozen, tail = self.finish(text) or [""]
        if len(tail) > self.limit - self.reserve:  # the live message shows what fits of it
            tail = plan(text, self.limit, self.reserve)[len(frozen)]
        return StreamPlan(frozen, close_code_block(tail) + self.marker)

    def finish(self, text: str) -> list[str]:
        """Return every message's final text; the earlier ones equal the frozen chunks."""
        return split_message(text, self.limit - self.reserve, last_limit=self.limit)


# What Discord previews, unless already in <...>; a backslash after it (an escape) is
# the text's, not the address's.
_WEB_ADDRESS = re.compile(r"(?<!<)(?:https?|steam)://[^\s<>\\]+", re.IGNORECASE)
# Ending an address, these are the sentence's, as Discord reads them; a closing bracket
# too unless the address opened it (Wikipedia's "Foo_(bar)").
_TRAILING = ".,:;'\""
_CLOSING = {")": "(", "]": "["}


def without_previews(text: str) -> str:
    """`text` with each web address in <...>: Discord shows it as a link, without a
    preview of that page (an embed) under the message."""
    return _WEB_ADDRESS.sub(_bracketed, text)


def _bracketed(match: re.Match[str]) -> str:
    link = match[0]
    end = len(link)
    while (last := link[end - 1]) in _TRAILING or (
        last in _CLOSING and link.count(last, 0, end) > link.count(_CLOSING[last], 0, end)
    ):
        end -= 1
    return f"<{link[:end]}>{link[end:]}"


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    """Shorten ``text`` to at most ``limit`` characters, ending with ``suffix`` if cut
    (never inside a visible character: a letter and its marks, an emoji sequence, a flag)."""
    if len(text) <= limit:
        return text
    if limit <= len(suffix):
        return suffix[:limit]
    cut = limit - len(suffix)
    while cut > 0 and _joins(text, cut):
        cut -= 1
    return text[:cut].rstrip() + suffix


def name_key(name: str) -> str:
    """How names people give (characters, playlists) compare: compatibility-normalised
    (NFKC), casefolded, without format characters (zero-width spaces and the like),
    whitespace collapsed. "Zoë" typed and "Zoë" decomposed in a card are one name; so
    are "Aria" and "Aria" + U+200B."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, made plural with an "s" unless the count is one."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def estimate_tokens(text: str) -> int:
    """Estimate Gemini tokens as about four characters each (0 for empty text)."""
    return -(-len(text) // 4)


def wait_words(seconds: float) -> str:
    """A wait as people say it, rounded up: "40 seconds", "1 minute", "10 minutes"."""
    count, unit = math.ceil(seconds), "second"
    if count >= 90:
        count, unit = math.ceil(seconds / 60), "minute"
    return counted(count, unit)


def well_formed(text: str) -> str:
    """`text` with each lone surrogate (half of a UTF-16 pair, as Discord's JSON can send
    one: "\\ud83d") as U+FFFD, which UTF-8 cannot encode (a file or a database refuses
    it); `text` itself (the same object) when it holds none, which is nearly always."""
    if not text.isascii():  # a flag in CPython: free for ASCII text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A surrogate pair split over two code points becomes its character.
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text
