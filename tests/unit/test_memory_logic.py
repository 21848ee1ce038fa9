"""Memory rules without I/O: scopes, chunking, scoring, parsing the model's facts."""

from __future__ import annotations

from pathlib import Path

import pytest

import utils.memory
from cogs.ai.records import Turn
from utils.memory import consolidation
from utils.memory.chunks import Chunk, ChunkLimits, Exchange, chunk_line, plan
from utils.memory.records import Scope, age_text
from utils.memory.scoring import (
    DAY,
    MAX_QUERY_TERMS,
    Weights,
    fused,
    indexed_terms,
    keywords,
    match_expression,
    query_terms,
    rare_enough,
    recency,
    score,
    speaks,
    split_speakers,
    words,
)

GUILD = Scope("guild", 1)


def exchange(text: str, *, author: int = 7, name: str = "alice", at: float = 0.0) -> Exchange:
    turns = [Turn("user", author, name, text), Turn("model", 0, "assistant", "ok")]
    return Exchange.of(GUILD, 100, turns, at)


def test_scope_of_guild_and_dm() -> None:
    assert Scope.of(5, 7) == Scope("guild", 5)
    assert Scope.of(None, 7) == Scope("dm", 7)
    assert Scope.parse("dm:7") == Scope("dm", 7)
    assert Scope("guild", 5).key == "guild:5" and Scope("dm", 7).filename == "dm-7.faiss"
    with pytest.raises(ValueError):
        Scope.parse("guild:abc")


def test_chunk_line_labels_and_caps() -> None:
    assert chunk_line(Turn("user", 7, "alice", "hi\n  there")) == "alice: hi there"
    assert chunk_line(Turn("model", 0, "Bot", "hello")) == "assistant: hello"
    long = chunk_line(Turn("user", 8, "bob", "x" * 1000))
    assert len(long) == len("bob: ") + 400 and long.endswith("…")


def test_chunk_grows_until_full_then_starts_anew() -> None:
    limits = ChunkLimits(max_turns=4)
    chunks = plan(None, [exchange("one"), exchange("two"), exchange("three")], limits)
    assert [c.turns for c in chunks] == [4, 2]
    assert chunks[0].text == "alice: one\nassistant: ok\nalice: two\nassistant: ok"
    assert all(c.id is None for c in chunks)


def test_chunk_continues_a_stored_open_chunk() -> None:
    said = "alice: one\nassistant: ok"
    stored = Chunk(9, GUILD, 100, 7, "alice", said, 2, 0.0, said)
    [grown] = plan(stored, [exchange("two", at=60)], ChunkLimits())
    assert grown.id == 9 and grown.turns == 4 and grown.created_at == 60
    assert grown.stored_text == "alice: one\nassistant: ok"


def test_new_chunk_when_someone_else_speaks_or_after_a_pause() -> None:
    said = "alice: one\nassistant: ok"
    stored = Chunk(9, GUILD, 100, 7, "alice", said, 2, 0.0, said)
    [bob] = plan(stored, [exchange("hi", author=8, name="bob")], ChunkLimits())
    assert bob.id is None and bob.author_id == 8
    [later] = plan(stored, [exchange("back", at=2 * 3600)], ChunkLimits(gap=3600))
    assert later.id is None, "an unchanged stored chunk is not rewritten"


def test_keywords_and_words() -> None:
    assert keywords("What is my cat called?") == {"cat"}
    assert keywords("Alice's cats are named Whiskers") >= {"alic", "cat", "whisker"}
    assert words("When did Ravi get the Fiat?") == ["ravi", "get", "fiat"]


def test_split_speakers_keeps_names_apart_from_what_was_said() -> None:
    text = "Ravi: I got a parrot: Kiwi\nassistant: Lovely, Ravi!\nRavi: she talks"
    assert split_speakers(text) == (
        "Ravi assistant",
        "I got a parrot: Kiwi\nLovely, Ravi!\nshe talks",
    )
    assert split_speakers("no speaker here") == ("", "no speaker here")
    long_name = "x" * 40 + ": words"
    assert split_speakers(long_name) == ("", long_name)


def test_search_terms_stay_in_their_scope_and_skip_common_words() -> None:
    assert query_terms("What does Ravi play? Ravi's banjos, Café!") == [
        "ravi",
        "play",
        "banjo",
        "cafe",
    ]
    assert len(query_terms(" ".join(f"word{n}" for n in range(500)))) == MAX_QUERY_TERMS
    assert match_expression("guild:12", ["ravi", "banjo"]) == (
        'scope : guild12 AND {names body} : ("ravi" OR "banjo")'
    )
    assert indexed_terms("Ravi: my cats\nassistant: Nice cats, Ravi!") == (
        "ravi assist",
        "cat nice cat ravi",
    )
    common = {"ravi": 900, "banjo": 3, "play": 40}
    assert rare_enough(common, 1000, 0.05) == ["ravi", "banjo", "play"], "all cheap"
    big = {"ravi": 90_000, "banjo": 30, "play": 4_000}
    assert rare_enough(big, 100_000, 0.05) == ["banjo", "play"]
    assert rare_enough({"ravi": 90_000, "day": 95_000}, 100_000, 0.05) == []


def test_fusion_and_score() -> None:
    weights = Weights()
    assert fused(0.5, 4.0, 4.0, weights) == pytest.approx(0.5 + weights.keyword)
    assert fused(0.5, 2.0, 4.0, weights) == pytest.approx(0.5 + weights.keyword / 2)
    assert fused(0.5, 0.0, 0.0, weights) == 0.5, "no keyword match at all"
    assert recency(365 * DAY, 365) == pytest.approx(0.5)

    def scored(
        fusion: float, *, fact: bool = False, age: float = 400 * DAY, named: bool = False
    ) -> float:
        return score(
            fusion, fact=fact, age_seconds=age, same_author=False, named=named, weights=weights
        )

    assert scored(0.6, fact=True) > scored(0.6) and scored(0.6, age=0) > scored(0.6)
    assert scored(0.6, fact=True) > scored(0.63), "a fact wins over chat that matches alike"
    assert scored(0.7, age=3 * 365 * DAY) > scored(0.65, age=0), "being new is only a tie-break"
    assert scored(0.6, named=True) > scored(0.7), "what the person asked about said comes first"
    assert scored(0.6, named=True) < scored(0.8), "... unless something else matches far better"


def test_speaks() -> None:
    asked = frozenset(words("What does Maya do for a living these days?"))
    assert speaks(asked, "Maya: got the offer, I start as a nurse\nGem: congrats!")
    assert speaks(asked, "Omar: anyone seen the game?\nMaya: yes")
    assert not speaks(asked, "Omar: Maya starts as a nurse on monday"), "named, not speaking"
    assert not speaks(frozenset(words("what do I do?")), "Maya: I start as a nurse")


def test_age_text() -> None:
    assert [age_text(s * DAY) for s in (0.5, 1, 3, 90)] == [
        "today",
        "yesterday",
        "3 days ago",
        "3 months ago",
    ]


SPEAKERS = [(7, "Alice"), None, (8, "Bob")]  # by line: Alice, the assistant, Bob


def test_parse_structured_answer_maps_lines_to_people() -> None:
    text = (
        '[{"line": 1, "user": "Alice", "fact": "Alice has a cat named Whiskers."},'
        ' {"line": 3, "user": "bob", "fact": "Bob plays the drums."},'
        ' {"line": 3, "user": "Carol", "fact": "Carol is unknown here."},'
        ' {"line": 1, "user": "Alice", "fact": ""}, "chatter", {"fact": 3},'
        ' {"line": 4, "user": "Bob", "fact": "Bob has no such line."},'
        ' {"line": "1", "user": "Alice", "fact": "Alice names no line."},'
        ' {"line": true, "user": "Alice", "fact": "Alice names no line either."}]'
    )
    facts = consolidation.parse(text, SPEAKERS)
    assert facts == [
        consolidation.Fact(7, "Alice", "Alice has a cat named Whiskers.", 1),
        consolidation.Fact(8, "Bob", "Bob plays the drums.", 3),
    ]


def test_parse_keeps_a_fact_only_for_who_said_it_of_themselves() -> None:
    """A fact about Alice drawn from Bob's line, or the assistant's, is nobody's."""
    text = (
        '[{"line": 2, "user": "assistant", "fact": "The assistant is called Gem."},'
        ' {"line": 3, "user": "Alice", "fact": "Alice is a thief."},'
        ' {"line": 2, "user": "Alice", "fact": "Alice is a chef."},'
        ' {"line": 1, "user": " ALICE ", "fact": "Alice likes tea."}]'
    )
    assert consolidation.parse(text, SPEAKERS) == [
        consolidation.Fact(7, "Alice", "Alice likes tea.", 1)
    ]


def test_speakers_are_nobody_for_the_bot_and_for_a_name_two_people_share() -> None:
    turns = [
        Turn("user", 7, "Sam", "a"),
        Turn("model", 0, "assistant", "b"),
        Turn("user", 8, "sam", "c"),
        Turn("user", 9, "Robin", "d"),
        Turn("user", 10, "Assistant", "e"),
    ]
    assert consolidation.speakers_of(turns) == [None, None, None, (9, "Robin"), None]


def test_parse_answers_that_are_not_a_list() -> None:
    assert consolidation.parse("[]", SPEAKERS) == []
    assert consolidation.parse('{"line": 1, "user": "Alice", "fact": "Likes tea."}', SPEAKERS) == []
    assert consolidation.parse("Nothing worth keeping.", SPEAKERS) == []


def test_memory_reads_the_chat_log_only_through_the_chat_store() -> None:
    """The chat store owns the conversation tables; memory imports no cog."""
    package = Path(utils.memory.__file__).parent
    for path in package.glob("*.py"):
        source = path.read_text()
        assert "ai_messages" not in source and "ai_channels" not in source, path.name
        assert "from cogs" not in source and "import cogs" not in source, path.name
