"""A channel's conversation as Markdown or JSON Lines, for `/ai export`.

A reply that stopped early says why (`incomplete`: restart, safety, length, ...); one
still being written (WRITING) says so instead, as it has not stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from cogs.ai.records import WRITING, Turn


def _when(turn: Turn) -> str:
    return datetime.fromtimestamp(turn.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def to_markdown(turns: list[Turn], title: str) -> str:
    lines = [f"# {title}", ""]
    for turn in turns:
        name = "Assistant" if turn.role == "model" else turn.author_name
        lines += [f"**{name}** · {_when(turn)}", "", turn.content, ""]
        if turn.incomplete == WRITING:
            lines += ["*(still being written)*", ""]
        elif turn.incomplete:
            lines += [f"*(incomplete: {turn.incomplete})*", ""]
    return "\n".join(lines)


def to_jsonl(turns: list[Turn]) -> str:
    return "".join(
        json.dumps(
            {
                "id": turn.id,
                "role": turn.role,
                "author_id": turn.author_id,
                "author_name": turn.author_name,
                "content": turn.content,
                "tokens": turn.tokens,
                "created_at": datetime.fromtimestamp(turn.created_at, UTC).isoformat(),
                "incomplete": None if turn.incomplete == WRITING else turn.incomplete,
                "writing": turn.incomplete == WRITING,
            },
            ensure_ascii=False,
        )
        + "\n"
        for turn in turns
    )


def newest_that_fit(
    turns: list[Turn], render: Callable[[list[Turn]], str], limit: int
) -> tuple[bytes, int]:
    """The file of the newest turns whose rendering fits `limit` bytes (Discord's upload
    limit), and how many turns it holds (0: not even the newest one fits)."""
    data = render(turns).encode()
    if len(data) <= limit:
        return data, len(turns)
    low, high = 1, len(turns)  # the earliest first turn to keep that fits: in [low, high]
    while low < high:
        middle = (low + high) // 2
        if len(render(turns[middle:]).encode()) <= limit:
            high = middle
        else:
            low = middle + 1
    kept = turns[low:]
    return (render(kept).encode() if kept else b""), len(kept)
