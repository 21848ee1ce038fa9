"""A scene's script, as the model writes it, into messages: one speaker per message.

The model writes a scene turn as lines ``Name: text`` (a character's name, or
``Narrator:``). `SceneSplitter` is a `cogs.ai.streaming.Splitter`: it cuts the streamed
text at speaker changes and, within one speaker's lines, at the length limit, and
starts each message's content with a marker naming its speaker, which the scene's
sink strips (`speaker_of`) to send the message as that character. A message keeps
its speaker: while streaming, a last line that might still become a ``Name:`` tag is
held back until it is decided. Tags are compared with the names by `name_key` (any
case or encoding). A tag of an unknown name is text of the current speaker; text
before any tag is narration. No Discord here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import product

from utils.text import StreamPlan, StreamSplitter, name_key

NARRATOR = "Narrator"
"""The speaker of a scene's narration (the bot itself), so no character's name."""

_MARK = "\x1f"  # a content is _MARK + speaker + _MARK + text
_NAME = 64
_AFTER_TAG = re.compile(r"^[*_]{0,2}[ \t]?")  # the end of `**Name:** ` after its colon
# How much markdown to strip from around a tag's name, the least first: models bold
# names (`**Name:**`, `*Name*:`) and names may hold `*` and `_` themselves.
_MARKDOWN_CUTS = sorted(product(range(3), repeat=2), key=sum)


def marked(speaker: str, text: str) -> str:
    return f"{_MARK}{speaker}{_MARK}{text}"


def speaker_of(content: str) -> tuple[str, str]:
    """The speaker and the text of a message content the splitter made."""
    if not content.startswith(_MARK):
        return NARRATOR, content
    speaker, _, text = content[1:].partition(_MARK)
    return speaker, text


class SceneSplitter:
    """Plans the messages of a streamed scene turn (see the module docstring)."""

    def __init__(self, speakers: Iterable[str], limit: int, marker: str) -> None:
        self._names = {name_key(NARRATOR): NARRATOR}
        self._names.update({name_key(s): s for s in speakers})
        self._lines = StreamSplitter(limit, marker)

    def feed(self, text: str) -> StreamPlan:
        *done, (speaker, last) = self._segments(text, final=False) or [(NARRATOR, "")]
        messages = [marked(s, chunk) for s, said in done for chunk in self._lines.finish(said)]
        if last.strip():
            plan = self._lines.feed(last)
            frozen = [*messages, *(marked(speaker, chunk) for chunk in plan.frozen)]
            return StreamPlan(frozen, marked(speaker, plan.tail))
        if not messages:
            return StreamPlan([], "")  # nothing decided yet
        return StreamPlan(messages[:-1], messages[-1])

    def finish(self, text: str) -> list[str]:
        return [
            marked(speaker, chunk)
            for speaker, said in self._segments(text, final=True)
            for chunk in self._lines.finish(said)
        ]

    def _segments(self, text: str, *, final: bool) -> list[tuple[str, str]]:
        """(speaker, text) runs, in order; neighbouring runs have different speakers."""
        lines = text.split("\n")
        if not final and not _decided(lines[-1]):
            lines.pop()
        segments: list[tuple[str, list[str]]] = []
        for line in lines:
            speaker, said = self._tagged(line)
            if speaker is None:
                if not segments:
                    segments.append((NARRATOR, []))
                segments[-1][1].append(line)
            elif segments and segments[-1][0] == speaker:
                segments[-1][1].append(said)
            else:
                segments.append((speaker, [said]))
        return [(speaker, "\n".join(said)) for speaker, said in segments]

    def _tagged(self, line: str) -> tuple[str | None, str]:
        """The speaker a line's ``Name:`` tag names (None: no tag) and the line after it."""
        head, colon, said = line.partition(":")  # names hold no colon
        if not colon or len(head) > _NAME + 8:
            return None, line
        head = head.strip()
        for left, right in _MARKDOWN_CUTS:
            if set(head[:left] + head[len(head) - right :]) <= {"*", "_"}:
                speaker = self._names.get(name_key(head[left : len(head) - right]))
                if speaker:
                    return speaker, _AFTER_TAG.sub("", said, count=1)
        return None, line


def _decided(line: str) -> bool:
    """Whether a line still being written can no longer turn into a ``Name:`` tag."""
    return ":" in line or len(line) > _NAME + 8
