"""Tests for utils.text: message splitting, streaming plans and small text helpers."""

from __future__ import annotations

import random
import re
import string

import pytest

from utils.text import (
    DISCORD_LIMIT,
    StreamSplitter,
    estimate_tokens,
    plan,
    split_message,
    truncate,
)

_REOPEN = re.compile(r"```[\w+#.-]*\n")
# England's flag: a black flag, the tag characters "gbeng" and a cancel tag.
ENGLAND = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "gbeng") + "\U000e007f"


def _fence_lines(chunk: str) -> int:
    return sum(line.lstrip().startswith("```") for line in chunk.splitlines())


def _bodies(chunk: str) -> list[str]:
    """Candidate originals of a chunk, longest first: with or without the added fence lines."""
    reopen = _REOPEN.match(chunk)
    starts = [0, reopen.end()] if reopen else [0]
    ends = [len(chunk), len(chunk) - 4] if chunk.endswith("\n```") else [len(chunk)]
    return sorted({chunk[s:e] for s in starts for e in ends if e > s}, key=len, reverse=True)


def assert_reconstructs(text: str, chunks: list[str]) -> None:
    """Check the documented guarantee: text == ws + body + ws + body ... + ws."""
    pos = 0
    for chunk in chunks:
        for body in _bodies(chunk):
            at = text.find(body, pos)
            if at >= 0 and not text[pos:at].strip():
                pos = at + len(body)
                break
        else:
            pytest.fail(f"chunk not found at {pos}: {chunk!r}")
    assert not text[pos:].strip()


def assert_valid(text: str, chunks: list[str], limit: int) -> None:
    assert all(len(c) <= limit for c in chunks)
    assert all(c.strip() for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert_reconstructs(text, chunks)


def _long_text_with_code() -> str:
    prose = "This sentence talks about the weather. " * 38  # ~1500 chars
    code = "\n".join(f"    value_{i} = compute({i}) + offset  # step {i}" for i in range(52))
    outro = "And that is how the function works, more or less. " * 22
    return f"{prose}\n\nHere is the code:\n\n```py\n{code}\n```\n\n{outro}"


def test_long_text_with_code_block_splits_in_three() -> None:
    text = _long_text_with_code()
    assert 4900 < len(text) < 5100

    chunks = split_message(text)

    assert len(chunks) == 3
    assert all(len(c) <= DISCORD_LIMIT for c in chunks)
    assert all(_fence_lines(c) % 2 == 0 for c in chunks)
    assert chunks[1].endswith("\n```")  # the code block was closed at the split ...
    assert chunks[2].startswith("```py\n    value_")  # ... and re-opened with its language
    assert_valid(text, chunks, DISCORD_LIMIT)


@pytest.mark.parametrize("words", range(392, 398))
def test_a_message_never_ends_with_an_empty_code_block(words: int) -> None:
    """A code block that starts near the end of a message goes whole to the next one:
    its fence line alone, closed at once, would show an empty box."""
    code = "\n".join(f"    line_{i} = {i} * 2  # comment" for i in range(80))
    text = "word " * words + "\n```python\n" + code + "\n```\nafter text here."

    chunks = split_message(text)

    assert chunks[0].endswith("word")
    assert chunks[1].startswith("```python\n    line_0 = 0")
    assert not any(re.search(r"```[\w+#.-]*\s*```", c) for c in chunks)
    assert_valid(text, chunks, DISCORD_LIMIT)


def test_prefers_paragraph_then_newline_over_space() -> None:
    paragraph = "a" * 24 + "\n\n" + "b" * 8 + "\nccc ddd eee fff"
    line = "a" * 24 + "\n" + "bbb ccc ddd eee fff"

    assert split_message(paragraph, 40)[0] == "a" * 24
    assert split_message(line, 40)[0] == "a" * 24


def test_sentence_boundary_without_newline() -> None:
    text = "One two three four five. Six seven eight nine ten eleven twelve"

    chunks = split_message(text, 40)

    assert chunks[0] == "One two three four five."
    assert_valid(text, chunks, 40)


def test_cjk_full_stop_is_a_sentence_boundary() -> None:
    text = "これは日本語の文です。" * 8

    chunks = split_message(text, 40)

    assert all(c.endswith("。") for c in chunks)
    assert_valid(text, chunks, 40)


def test_falls_back_to_space() -> None:
    chunks = split_message("word " * 30, 40)

    assert chunks[0] == " ".join(["word"] * 8)
    assert all(not c.startswith(" ") for c in chunks)


def test_long_word_is_hard_cut() -> None:
    text = "x" * 5000

    assert split_message(text) == ["x" * 2000, "x" * 2000, "x" * 1000]


def test_hard_cut_keeps_combining_marks_with_their_letter() -> None:
    text = "e\u0301" * 50  # é as e + combining acute

    chunks = split_message(text, 33)

    assert all(not c.startswith("\u0301") for c in chunks)
    assert "".join(chunks) == text


@pytest.mark.parametrize(
    "grapheme",
    [
        pytest.param("\U0001f1fa\U0001f1f8", id="flag"),  # two regional indicators
        pytest.param("\U0001f44d\U0001f3fd", id="skin tone"),  # thumbs up + a skin tone
        pytest.param(ENGLAND, id="tags"),
    ],
)
def test_hard_cut_keeps_emoji_sequences_whole(grapheme: str) -> None:
    text = "x" + grapheme * 60  # a wall of emoji, nowhere better to cut

    chunks = split_message(text, 40)

    assert "".join(chunks) == text
    assert all(c.startswith(grapheme) for c in chunks[1:])


def test_empty_and_blank_text() -> None:
    assert split_message("") == []
    assert split_message(" \n\n \t") == []


def test_limit_too_small() -> None:
    with pytest.raises(ValueError):
        split_message("hello", 10)


def _random_text(rng: random.Random) -> str:
    def word(low: int = 1, high: int = 12) -> str:
        return "".join(rng.choices(string.ascii_letters, k=rng.randint(low, high)))

    pieces: list[str] = []
    for _ in range(rng.randint(1, 120)):
        roll = rng.random()
        if roll < 0.45:
            pieces.append(word())
        elif roll < 0.75:
            pieces.append(rng.choice([" ", " ", "\n", "\n\n", ". ", "! ", "? ", "。", "   ", "\t"]))
        elif roll < 0.8:
            pieces.append(word(40, 400))
        elif roll < 0.85:
            pieces.append(
                rng.choice(["ภาษาไทยไม่มีช่องว่าง", "e\u0301" * 20, "👩\u200d💻" * 5, "🇺🇸🇯🇵" * 10])
            )
        elif roll < 0.95:
            lang = rng.choice(["py", "js", "", "c++"])
            lines = [" " * rng.choice([0, 4, 8]) + word() + " = " + word() for _ in range(20)]
            pieces.append(f"\n```{lang}\n" + "\n".join(lines[: rng.randint(1, 20)]) + "\n```\n")
        else:
            pieces.append("`" + word() + "`")
    return "".join(pieces)


def test_random_texts_respect_limits_and_reconstruct() -> None:
    rng = random.Random(20240611)
    for _ in range(300):
        text = _random_text(rng)
        limit = rng.randint(32, 300)

        chunks = split_message(text, limit)

        assert_valid(text, chunks, limit)


def test_random_texts_split_prefix_stably() -> None:
    rng = random.Random(7)
    for _ in range(100):
        text = _random_text(rng)
        limit = rng.randint(32, 300)
        last_limit = limit + rng.choice([0, 6])
        full = split_message(text, limit, last_limit=last_limit)
        for end in sorted(rng.sample(range(len(text) + 1), min(15, len(text) + 1))):
            partial = split_message(text[:end], limit, last_limit=last_limit)
            assert partial[:-1] == full[: len(partial[:-1])]


def test_stream_splitter_frozen_chunks_never_change() -> None:
    text = _long_text_with_code() * 2
    splitter = StreamSplitter()
    rng = random.Random(3)

    frozen: list[str] = []
    end = 0
    while end < len(text):
        end = min(len(text), end + rng.randint(1, 120))
        step = splitter.feed(text[:end])
        assert step.frozen[: len(frozen)] == frozen  # earlier frozen chunks never change
        frozen = step.frozen
        assert len(step.tail) <= DISCORD_LIMIT
        assert step.tail.endswith(splitter.marker)
        assert step.tail.count("```") % 2 == 0  # an open code block is closed for display

    final = splitter.finish(text)
    assert final[: len(frozen)] == frozen
    assert final == split_message(text, DISCORD_LIMIT - splitter.reserve, last_limit=DISCORD_LIMIT)
    assert final[:-1] == plan(text, DISCORD_LIMIT, splitter.reserve)[: len(final) - 1]
    assert len(final) > 3


def test_stream_splitter_final_message_may_use_the_markers_room() -> None:
    splitter = StreamSplitter()
    text = ("word " * 400)[:1996] + "end."
    assert len(text) == DISCORD_LIMIT

    live = splitter.feed(text)

    assert live.frozen == [], "the live message shows what fits, not a second message"
    assert len(live.tail) <= DISCORD_LIMIT and live.tail.endswith(splitter.marker)
    assert text.startswith(live.tail.removesuffix(splitter.marker))
    assert splitter.finish(text) == [text]
    # Once the text outgrows one message, the first is frozen as streaming showed it.
    longer = splitter.feed(text + " and more")
    assert longer.frozen == [live.tail.removesuffix(splitter.marker)]
    assert splitter.finish(text + " and more")[0] == longer.frozen[0]


def test_stream_splitter_starts_empty() -> None:
    splitter = StreamSplitter(marker=" ...")

    assert splitter.feed("") == ([], " ...")
    assert splitter.finish("") == []


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a long sentence here", 10) == "a long se…"
    assert len(truncate("x" * 50, 10)) == 10
    assert truncate("abcdef", 2, suffix="...") == ".."


@pytest.mark.parametrize(
    ("title", "limit", "shown"),
    [
        ("ab🇯🇵 cd", 4, "ab…"),
        ("ab🇯🇵🇯🇵 cd", 6, "ab🇯🇵…"),
        ("ab👩\u200d💻 cd", 4, "ab…"),
        ("ab👩\u200d💻 cd", 5, "ab…"),
        ("ab👍🏽 cd", 4, "ab…"),
        ("Cafe\u0301 music", 5, "Caf…"),
    ],
)
def test_truncate_never_cuts_a_character_in_half(title: str, limit: int, shown: str) -> None:
    """A flag, an emoji sequence or a letter with its accent is kept whole or left out."""
    assert truncate(title, limit) == shown


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
