"""Web addresses in titles and names are shown without a preview, and still work."""

from __future__ import annotations

import pytest

from utils.text import without_previews


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://a.com/x", "<https://a.com/x>"),
        ("Live at https://twitch.tv/foo: tonight", "Live at <https://twitch.tv/foo>: tonight"),
        ("see https://a.com/x.", "see <https://a.com/x>."),
        ("first https://a.com/x, then", "first <https://a.com/x>, then"),
        ("Song (https://youtu.be/x)", "Song (<https://youtu.be/x>)"),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", "<https://en.wikipedia.org/wiki/Foo_(bar)>"),
        ('"https://a.com/x"', '"<https://a.com/x>"'),
    ],
)
def test_link_ends_where_the_address_ends(text: str, shown: str) -> None:
    assert without_previews(text) == shown


def test_address_already_in_brackets_is_left_alone() -> None:
    text = "see <https://a.com/x> ok"
    assert without_previews(text) == text
