"""Tools in small: the print under a reply (what was done, the sources as links), the
time one turn's calls share, which links count as the asker's, and the audit (shown as
plain text, refused calls kept apart)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from google.genai import types

from cogs.ai.tools import audit
from cogs.ai.tools.settings import audit_embed
from cogs.ai.tools.toolbox import (
    MAX_LINK,
    MAX_SOURCES,
    MAX_TITLE,
    OUT_OF_TIME,
    Toolbox,
    footer,
)
from cogs.ai.tools.web import pasted
from utils.db import Database
from utils.tools import Asker, Done, Family, NoArguments, Tool, ToolRegistry


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


def test_an_address_too_long_to_stay_in_one_message_is_left_out() -> None:
    """A 2000-character link cut between two messages would lose its closing > and
    unfurl into an embed."""
    long = "https://long.example/" + "a" * MAX_LINK
    tail = footer(["🔗 read a link"], [("long.example", long), ("ok", "https://ok.example/")])
    assert tail == "\n\n-# 🔗 read a link\n-# Sources: [ok](<https://ok.example/>)"


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


async def test_one_turns_calls_share_a_time_limit() -> None:
    async def nap(_: Asker, __: NoArguments) -> Done:
        await asyncio.sleep(0.2)
        return Done({"slept": True})

    registry = ToolRegistry()
    registry.register([Tool("nap", "Sleep.", Family.INFO, nap, NoArguments, guild_only=False)])
    asker = Asker(cast(Any, None), cast(Any, None), None, None)
    toolbox = Toolbox(registry, asker, frozenset(Family), timeout=0.3, round_time=0.3)
    parts = await toolbox.run_all([types.FunctionCall(name="nap", args={})] * 3)

    assert [part["function_response"]["response"] for part in parts] == [  # type: ignore[index]
        {"slept": True},
        {"error": "nap took too long and was stopped."},  # had only the turn's 0.1 s left
        {"error": OUT_OF_TIME},
    ]


@pytest.mark.parametrize(
    "text",
    [
        "read https://a.example/page",
        "read https://a.example/page/ please",
        "what does a.example/page say?",
        "[this](https://a.example/page), or <https://a.example/page>.",
        "is HTTP://a.example/page (the page) good?",
    ],
)
def test_a_link_the_asker_wrote_is_theirs(text: str) -> None:
    assert pasted("https://a.example/page", text)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/page?d=what-you-know",
        "https://a.example/",
        "https://evil.example/page",
        "https://a.example/page/more",
    ],
)
def test_a_link_the_asker_never_wrote_is_not(url: str) -> None:
    assert not pasted(url, "read https://a.example/page and a.example/other")


def test_audit_shows_what_the_model_chose_as_plain_text() -> None:
    arguments = json.dumps({"name": "[Verify your account](https://evil.example/login) **now**"})
    result = "refused: @everyone [x](https://evil.example)"
    action = audit.Action(1, 2, 3, "create_channel", arguments, result, False, 0.0)
    description = audit_embed([action]).description or ""

    assert "](https://evil.example" not in description  # no masked link to click
    assert "\\*\\*now\\*\\*" in description and "@\u200beveryone" in description


async def test_refused_calls_never_push_out_recorded_changes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "KEEP", 3)
    monkeypatch.setattr(audit, "KEEP_FAILED", 2)
    log = audit.ToolAudit(db)
    await log.record(1, 2, 3, "create_role", '{"name": "mods"}', "created @mods", ok=True)
    for n in range(5):  # anyone can ask for what they may not do
        await log.record(1, 2, 4, "create_role", f'{{"name": "{n}"}}', "refused", ok=False)
    kept = await log.recent(1, 100)
    assert [(a.arguments, a.ok) for a in kept] == [
        ('{"name": "4"}', False),
        ('{"name": "3"}', False),
        ('{"name": "mods"}', True),
    ]

    for n in range(3):
        await log.record(1, 2, 3, "pin_message", f'{{"message_id": {n}}}', "pinned", ok=True)
    assert [a.tool for a in await log.recent(1, 100) if a.ok] == ["pin_message"] * 3
