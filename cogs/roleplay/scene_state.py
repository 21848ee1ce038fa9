"""What a scene's story has established about its characters, places and items.

The state is a small JSON document kept with the scene (`SceneStore`): per entity its
kind and a few short facts. After each turn the model reports what changed as
structured output (`SCHEMA`), which `merge` folds in; the scene owner corrects facts
with `set_fact`; `render` writes it for the system instruction and `/scene state`.
Bounded: `MAX_ENTITIES` entities (the least recently changed go first), `MAX_FACT`
characters per fact. No Discord and no I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from google.genai import types

from utils.text import truncate

KINDS = ("character", "place", "item")
FACTS = ("location", "condition", "relationships", "possessions", "goals")
MAX_ENTITIES = 40
MAX_FACT = 200
MAX_NAME = 64
CLEAR = "-"  # a fact set to this is removed

State = dict[str, dict[str, str]]
"""Casefolded name -> {"name", "kind", facts...}; the least recently changed first."""

_TEXT: types.SchemaDict = {"type": types.Type.STRING}
SCHEMA: types.SchemaDict = {
    "type": types.Type.OBJECT,
    "properties": {
        "entities": {
            "type": types.Type.ARRAY,
            "items": {
                "type": types.Type.OBJECT,
                "properties": {
                    "name": _TEXT,
                    "kind": {"type": types.Type.STRING, "enum": list(KINDS)},
                    **{fact: _TEXT for fact in FACTS},
                },
                "required": ["name", "kind"],
            },
        }
    },
    "required": ["entities"],
}

INSTRUCTION = (
    "You keep the continuity notes of a roleplay scene. From the notes so far and the "
    "latest exchange, list only the characters, places and items whose facts changed or "
    "were newly established: location, condition (injuries, health, mood), relationships, "
    "possessions, goals. Write each fact as a short phrase (under 200 characters) that "
    "replaces the old one; leave unchanged facts empty. Return an empty list when nothing "
    "changed."
)


def _clean(value: Any, limit: int) -> str:
    return truncate(" ".join(value.split()), limit) if isinstance(value, str) else ""


def merge(state: State, updates: Iterable[Mapping[str, Any]]) -> State:
    """`state` with `updates` (entities as `SCHEMA` gives them) folded in. An update
    that only removes facts of an entity not in `state` is dropped (no empty entity)."""
    merged = {key: dict(entity) for key, entity in state.items()}
    for update in updates:
        name = _clean(update.get("name"), MAX_NAME)
        values = {fact: _clean(update.get(fact), MAX_FACT) for fact in FACTS}
        removes_only = CLEAR in values.values() and set(values.values()) <= {CLEAR, ""}
        if not name or (removes_only and name.casefold() not in merged):
            continue
        entity = merged.pop(name.casefold(), {"name": name, "kind": KINDS[0]})
        if update.get("kind") in KINDS:
            entity["kind"] = update["kind"]
        for fact, value in values.items():
            if value == CLEAR:
                entity.pop(fact, None)
            elif value:
                entity[fact] = value
        merged[name.casefold()] = entity  # most recently changed last
    for key in list(merged)[: max(0, len(merged) - MAX_ENTITIES)]:
        del merged[key]
    return merged


def set_fact(state: State, name: str, fact: str, value: str, kind: str | None = None) -> State:
    """A correction: one fact of one entity (CLEAR removes it), and its kind if given."""
    return merge(state, [{"name": name, "kind": kind, fact: value}])


def noted(state: State, name: str, fact: str) -> str:
    """One fact of one entity of `state` ("" when none is noted)."""
    return state.get(_clean(name, MAX_NAME).casefold(), {}).get(fact, "")


def updates_in(text: str) -> list[Mapping[str, Any]]:
    """The entities of a structured reply; [] when it is not of the schema's shape."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    entities = data.get("entities") if isinstance(data, dict) else None
    return [e for e in entities if isinstance(e, dict)] if isinstance(entities, list) else []


def render(state: State) -> str:
    """One line per entity: ``- Bren (character): location: the inn; possessions: ...``."""
    lines = []
    for entity in state.values():
        facts = "; ".join(f"{fact}: {entity[fact]}" for fact in FACTS if entity.get(fact))
        lines.append(f"- {entity['name']} ({entity['kind']}): {facts or 'nothing noted yet'}")
    return "\n".join(lines)


def dumps(state: State) -> str:
    return json.dumps(list(state.values()), ensure_ascii=False)


def loads(text: str) -> State:
    return merge({}, json.loads(text))
