"""`/ai export`'s files: what they say of a reply that stopped early or is still being written."""

from __future__ import annotations

import json

from cogs.ai.export import to_jsonl, to_markdown
from cogs.ai.records import WRITING, Turn

TURNS = [
    Turn("user", 7, "alice", "tell me a story", id=1, created_at=0.0),
    Turn("model", 0, "ai", "Once upon a", incomplete=WRITING, id=2, created_at=0.0),
]


def test_a_reply_still_being_written_is_not_called_interrupted() -> None:
    markdown = to_markdown(TURNS, "Conversation in #general")
    assert "interrupted" not in markdown
    assert "*(still being written)*" in markdown
    reply = json.loads(to_jsonl(TURNS).splitlines()[1])
    assert reply["incomplete"] is None and reply["writing"] is True


def test_a_reply_cut_off_says_why() -> None:
    cut_off = [TURNS[0], Turn("model", 0, "ai", "Once", incomplete="restart", id=2)]
    assert "*(incomplete: restart)*" in to_markdown(cut_off, "t")
    reply = json.loads(to_jsonl(cut_off).splitlines()[1])
    assert reply["incomplete"] == "restart" and reply["writing"] is False
