"""Consolidation: asking the model which lasting facts about people a conversation holds.

The request shows recent AI chat messages and asks for JSON lines
`{"user": "<name>", "fact": "<sentence>"}`; the parser accepts those (or a JSON
array, with or without a code fence) and maps each name back to the person's id.
The service runs it periodically, dedupes the facts and stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from google.genai import types

from utils.memory.chunks import render_turn
from utils.memory.store import ChatTurn

MAX_FACT_CHARS = 300

INSTRUCTION = (
    "You keep the long-term memory of a Discord chat assistant. Read the conversation and "
    "list lasting facts about the people in it (never about the assistant, who is 'you'): "
    "names they go by, pets, family, work, places, tastes, plans, and anything they ask "
    "to be remembered. Skip greetings, passing moods, questions and one-off requests. "
    "Write each fact as one short third-person sentence that names the person, in the "
    "conversation's language. Answer with one JSON object per line, exactly "
    '{"user": "<the name as written>", "fact": "<the fact>"}, and nothing else; answer '
    "with nothing when there is nothing worth keeping."
)


@dataclass(frozen=True)
class Fact:
    author_id: int
    author_name: str
    text: str


def request(turns: Sequence[ChatTurn]) -> list[types.ContentDict]:
    lines = [render_turn(t.role, t.author_name, t.content) for t in turns]
    text = "Conversation:\n" + "\n".join(lines)
    return [{"role": "user", "parts": [{"text": text}]}]


def _items(text: str) -> Iterator[object]:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[-1].rsplit("```", 1)[0].strip()
    try:
        whole = json.loads(body)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        yield from whole
        return
    if isinstance(whole, dict):
        yield whole
        return
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def parse(text: str, people: Mapping[str, tuple[int, str]]) -> list[Fact]:
    """Facts from the model's answer. `people` maps lower-cased names to (id, name);
    a fact naming no one known goes to the only person present, else it is dropped."""
    facts = []
    for item in _items(text):
        if not isinstance(item, dict):
            continue
        fact = item.get("fact")
        if not isinstance(fact, str) or not 3 <= len(fact.strip()) <= MAX_FACT_CHARS:
            continue
        name = item.get("user")
        person = people.get(name.strip().lower()) if isinstance(name, str) else None
        if person is None and len(people) == 1:
            person = next(iter(people.values()))
        if person is not None:
            facts.append(Fact(person[0], person[1], " ".join(fact.split())))
    return facts
