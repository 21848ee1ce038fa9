"""Positions /seek understands."""

from __future__ import annotations

import pytest

from cogs.music.errors import MusicError
from cogs.music.playback import parse_position


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:23", 83.0),
        ("1:02:03", 3723.0),
        ("83", 83.0),
        (" 2:00 ", 120.0),
        ("90.5", 90.5),
        ("+30", 80.0),
        ("-10", 40.0),
        ("- 1:00", 0.0),  # never before the start
        ("0", 0.0),
    ],
)
def test_positions(text: str, expected: float) -> None:
    assert parse_position(text, current=50.0) == expected


@pytest.mark.parametrize("text", ["", "abc", "1:75", "1:60:00", "1:2:3:4", "+", "1::2", "-1:x"])
def test_bad_positions(text: str) -> None:
    with pytest.raises(MusicError, match="Give a position such as"):
        parse_position(text, current=50.0)
