"""The small print under a reply with tools: what was done, and the sources as links."""

from __future__ import annotations

from cogs.ai.tools.toolbox import MAX_SOURCES, MAX_TITLE, footer


def test_nothing_done_and_no_sources_adds_nothing() -> None:
    assert footer([], []) == ""
    assert footer([], [("Files", "ftp://files.example/")]) == ""


def test_notes_then_sources_as_links_that_do_not_unfurl() -> None:
    tail = footer(
        ["🎵 queued *Song*", "🔎 searched the web"],
        [("News", "https://news.example/a"), ("", "http://plain.example/")],
    )
    assert tail == (
        "\n\n-# 🎵 queued *Song* · 🔎 searched the web\n"
        "-# Sources: [News](<https://news.example/a>) · [link](<http://plain.example/>)"
    )


def test_titles_are_escaped_one_short_line() -> None:
    tail = footer([], [("A [b] *c*\n# d " + "e" * 100, "https://t.example/")])
    label = tail.split("[", 1)[1].rsplit("](", 1)[0]
    assert label.startswith("A (b) \\*c\\* # d e")
    assert "\n" not in label and "[" not in label and "](" not in label
    assert label.endswith("…") and len(label.replace("\\", "")) == MAX_TITLE


def test_only_web_addresses_that_stay_inside_the_brackets() -> None:
    tail = footer(
        [],
        [
            ("js", "javascript:alert(1)"),
            ("escape", "https://a.example/>[x](https://evil.example)"),
            ("space", "https://a.example/ b"),
            ("newline", "https://a.example/\nb"),
            ("upper", "HTTPS://a.example/"),
            ("ok", "https://ok.example/"),
        ],
    )
    assert tail == "\n\n-# Sources: [ok](<https://ok.example/>)"


def test_one_link_per_address_and_a_limit() -> None:
    sources = [("First", "https://a.example/"), ("Again", "https://a.example/")]
    sources += [(f"S{i}", f"https://s{i}.example/") for i in range(10)]
    links = footer([], sources).split("Sources: ")[1].split(" · ")
    assert len(links) == MAX_SOURCES
    assert links[0] == "[First](<https://a.example/>)"
    assert "Again" not in footer([], sources)


def test_a_title_with_an_address_shows_the_site() -> None:
    tail = footer([], [("see https://evil.example/x", "https://news.example/a")])
    assert tail == "\n\n-# Sources: [news.example](<https://news.example/a>)"
