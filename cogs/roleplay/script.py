"""A scene's script, as the model writes it, into messages: one speaker per message.

The model writes a scene turn as lines ``Name: text`` (a character's name, or
``Narrator:``). `SceneSplitter` is a `cogs.ai.streaming.Splitter`: it cuts the streamed
text at speaker changes and, within one speaker's lines, at the length limit, and
starts each message's content with a marker naming its speaker, which the scene's
sink strips (`speaker_of`) to send the message as that character. A message keeps
its speaker: while streaming, a last line that might still become a ``Name:`` tag is
held back until it is decided. A tag of an unknown name is text of the current
speaker; text before any tag is narration. No Discord here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from utils.text import StreamPlan, StreamSplitter

NARRATOR = "Narrator"
_MARK = "\x1f"  # a content is _MARK + speaker + _MARK + text
_NAME = 64


def _tag(names: Iterable[str]) -> re.Pattern[str]:
    """``Name:`` of one of ``names`` (taken literally, longest first, any case), also
    ``**Name:**`` or ``*Name*:`` as models like to bold names."""
    longest_first = sorted(names, key=len, reverse=True)
    pattern = "|".join(r"[ \t]+".join(map(re.escape, n.split())) for n in longest_first)
    return re.compile(
        rf"[ \t]*[*_]{{0,2}}({pattern})[*_]{{0,2}}[ \t]*:[*_]{{0,2}}[ \t]?", re.IGNORECASE
    )


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
        self._names = {NARRATOR.casefold(): NARRATOR}
        self._names.update({" ".join(s.split()).casefold(): s for s in speakers})
        self._tag = _tag(self._names.values())
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
        match = self._tag.match(line)
        if match is None:
            return None, line
        speaker = self._names.get(" ".join(match[1].split()).casefold())
        return (speaker, line[match.end() :]) if speaker else (None, line)


def _decided(line: str) -> bool:
    """Whether a line still being written can no longer turn into a ``Name:`` tag."""
    return ":" in line or len(line) > _NAME + 8
