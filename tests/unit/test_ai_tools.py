"""Tools in small: the print under a reply (what was done, the sources as links), the
time one turn's calls share, which links count as the asker's, and the audit (shown as
plain text, refused calls kept apart)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest
from google.genai import types
from pydantic import BaseModel

from cogs.ai.tools import audit
from cogs.ai.tools.settings import audit_embed, plain
from cogs.ai.tools.toolbox import (
    MAX_CHANGES,
    MAX_LINK,
    MAX_SOURCES,
    MAX_TITLE,
    OUT_OF_TIME,
    REPEATED,
    UNKNOWN_OUTCOME,
    UNKNOWN_REPEATED,
    Toolbox,
    footer,
)
from cogs.ai.tools.web import foreign_address, pasted
from utils.db import Database
from utils.tools import Asker, Done, Family, NoArguments, Tool, ToolRefused, ToolRegistry


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


class NameIn(BaseModel):
    name: str


async def test_calls_refused_take_none_of_the_changes_a_reply_may_make() -> None:
    """A model guessing a channel's name: each wrong guess changed nothing."""

    async def rename(_: Asker, args: NameIn) -> Done:
        if args.name != "general":
            raise ToolRefused(f"There is no channel {args.name!r} here.")
        return Done({"renamed": args.name})

    registry = ToolRegistry()
    registry.register(
        [Tool("rename", "Rename.", Family.INFO, rename, NameIn, changes=True, guild_only=False)]
    )
    toolbox = Toolbox(
        registry, Asker(cast(Any, None), cast(Any, None), None, None), frozenset(Family)
    )
    guesses = [f"general-{n}" for n in range(MAX_CHANGES)] + ["general-0", "general"]
    parts = await toolbox.run_all(
        [types.FunctionCall(name="rename", args={"name": name}) for name in guesses]
    )

    results = [part["function_response"]["response"] for part in parts]  # type: ignore[index]
    assert results[-2:] == [
        {"refused": "There is no channel 'general-0' here."},
        {"renamed": "general"},
    ]
    again = await toolbox.run_all([types.FunctionCall(name="rename", args={"name": "general"})])
    assert again[0]["function_response"]["response"] == {"refused": REPEATED}  # type: ignore[index]


def _flaky_rename(failure: BaseException) -> Toolbox:
    """A toolbox whose `rename` fails with `failure` on its first call, then works."""
    failures = [failure]

    async def rename(_: Asker, args: NameIn) -> Done:
        if failures:
            raise failures.pop()
        return Done({"renamed": args.name})

    registry = ToolRegistry()
    registry.register(
        [Tool("rename", "Rename.", Family.INFO, rename, NameIn, changes=True, guild_only=False)]
    )
    return Toolbox(registry, Asker(cast(Any, None), cast(Any, None), None, None), frozenset(Family))


async def _results(toolbox: Toolbox, times: int) -> list[Any]:
    call = types.FunctionCall(name="rename", args={"name": "general"})
    parts = await toolbox.run_all([call] * times)
    return [part["function_response"]["response"] for part in parts]  # type: ignore[index]


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError(),
        discord.DiscordServerError(SimpleNamespace(status=503, reason="Unavailable"), ""),
        RuntimeError("a bug"),
    ],
)
async def test_a_change_that_may_have_been_made_is_not_called_made(failure: Exception) -> None:
    """A change that timed out or got a Discord 5xx may have been made: the model is told
    that it does not know, then and when it calls it again, never that it was made."""
    toolbox = _flaky_rename(failure)
    first, again = await _results(toolbox, 2)

    assert first["error"].endswith(UNKNOWN_OUTCOME) and again == {"refused": UNKNOWN_REPEATED}
    assert "already made" not in again["refused"]


@pytest.mark.parametrize(
    "failure",
    [
        discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"), ""),
        discord.HTTPException(SimpleNamespace(status=400, reason="Bad Request"), ""),
    ],
)
async def test_a_change_discord_refused_was_not_made(failure: Exception) -> None:
    """Discord refusing it changed nothing: calling it again is not "already made"."""
    toolbox = _flaky_rename(failure)
    first, again = await _results(toolbox, 2)

    assert "error" in first and again == {"renamed": "general"}


@pytest.mark.parametrize(
    "text",
    [
        "read https://a.example/page",
        "read https://a.example/page/ please",
        "what does a.example/page say?",
        "[this](https://a.example/page), or <https://a.example/page>.",
        "is HTTP://a.example/page (the page) good?",
        "这个链接https://a.example/page，讲了什么？",  # full-width punctuation ends it too
        "看看 https://a.example/page。",
        "「https://a.example/page」を読んで",
        "read “https://a.example/page”…",  # as a phone types quotes
        "what is «a.example/page»?",
        "what is ||a.example/page||?",  # a spoiler, or code, without its https://
        "read `a.example/page`",
        "read ```a.example/page```",
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


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("https://de.wikipedia.org/wiki/K%C3%B6ln", "what's on https://de.wikipedia.org/wiki/Köln"),
        ("https://de.wikipedia.org/wiki/Köln", "sum up https://de.wikipedia.org/wiki/K%C3%B6ln"),
        ("https://ja.example/%E6%9D%B1%E4%BA%AC?q=%E2%9C%93", "ja.example/東京?q=✓"),
        ("https://docs.example.com/Guide", "read https://Docs.Example.COM/Guide"),
    ],
)
def test_a_link_the_asker_wrote_in_another_spelling_is_theirs(url: str, text: str) -> None:
    """The model may write a link percent-encoded, or decoded, or its host in lower case."""
    assert pasted(url, text)


@pytest.mark.parametrize(
    "text",
    [
        "read [Foo](https://en.wikipedia.org/wiki/Foo_(bar))",
        "read https://en.wikipedia.org/wiki/Foo_(bar)",
        "(see https://en.wikipedia.org/wiki/Foo_(bar)).",
        "what does en.wikipedia.org/wiki/Foo_(bar) say?",
    ],
)
def test_a_link_whose_path_ends_in_a_bracket_is_theirs(text: str) -> None:
    """Wikipedia's addresses end in ")": the markdown or punctuation after one is not it."""
    assert pasted("https://en.wikipedia.org/wiki/Foo_(bar)", text)
    assert not pasted("https://en.wikipedia.org/wiki/Foo_(baz)", text)


def test_a_link_the_asker_wrote_to_a_part_of_a_page_gives_that_page() -> None:
    """The model may leave out the `#part` of the page pasted, never add one."""
    text = "what does https://en.wikipedia.org/wiki/Foo#History say?"
    assert pasted("https://en.wikipedia.org/wiki/Foo", text)
    assert not pasted("https://a.example/page#more", "read https://a.example/page")


def test_a_path_in_other_letters_is_another_page() -> None:
    assert not pasted("https://a.example/Page", "read https://a.example/page")


def test_audit_shows_what_the_model_chose_as_plain_text() -> None:
    arguments = json.dumps({"name": "[Verify your account](https://evil.example/login) **now**"})
    result = "refused: @everyone [x](https://evil.example)"
    action = audit.Action(1, 2, 3, "create_channel", arguments, result, False, 0.0)
    shown_text = audit_embed([], [action]).fields[0].value or ""

    assert "](https://evil.example" not in shown_text  # no masked link to click
    assert "\\*\\*now\\*\\*" in shown_text and "@\u200beveryone" in shown_text


def test_audit_shows_whole_lines_only() -> None:
    """Fifteen long entries do not fit an embed: the oldest are left out, none cut."""
    arguments, result = json.dumps({"name": "x" * 300}), f"created @{'y' * 300}"
    actions = [
        audit.Action(n, 2, 3, "create_role", arguments, result, True, 1_700_000_000 + n)
        for n in range(15)
    ]
    lines = (audit_embed(actions, []).description or "").splitlines()

    assert 10 <= len(lines) < 15
    assert [line.split(":")[1] for line in lines] == [
        f"{1_700_000_000 + n}" for n in range(len(lines))
    ]
    assert all(line.endswith(plain(result)) for line in lines)


async def test_refused_calls_never_push_out_recorded_changes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "KEEP", 3)
    monkeypatch.setattr(audit, "KEEP_FAILED", 2)
    log = audit.ToolAudit(db)
    await log.record(1, 2, 3, "create_role", '{"name": "mods"}', "created @mods", ok=True)
    for n in range(5):  # anyone can ask for what they may not do
        await log.record(1, 2, 4, "create_role", f'{{"name": "{n}"}}', "refused", ok=False)
    assert [a.arguments for a in await log.recent(1, 100, ok=False)] == [
        '{"name": "4"}',
        '{"name": "3"}',
    ]
    assert [a.arguments for a in await log.recent(1, 100, ok=True)] == ['{"name": "mods"}']

    for n in range(3):
        await log.record(1, 2, 3, "pin_message", f'{{"message_id": {n}}}', "pinned", ok=True)
    assert [a.tool for a in await log.recent(1, 100, ok=True)] == ["pin_message"] * 3


def test_the_longest_refused_calls_fit_the_embed() -> None:
    """Refused calls are shown apart, under the changes; whatever the model chose, at
    least the newest is shown whole, and the embed stays within Discord's limits."""
    worst = "_" * 500  # each character escaped: the longest text shown
    made = [audit.Action(n, 2**63, 2**63, "x" * 30, worst, worst, True, 1e10) for n in range(15)]
    refused = [audit.Action(n, 2**63, 2**63, "x" * 30, worst, worst, False, 1e10) for n in range(5)]
    embed = audit_embed(made, refused)

    (field,) = embed.fields
    assert field.value and len(field.value) <= 1024 and len(embed) <= 6000
    assert len(embed.description or "") <= 4096


async def test_a_family_switched_off_while_a_reply_runs_refuses_its_next_calls() -> None:
    """`/ai tools server off` while the model works: the reply's later server calls are
    refused, not run with the families the reply started with."""
    on = {Family.INFO, Family.SERVER}

    async def families_now() -> frozenset[Family]:
        return frozenset(on)

    async def rename(_: Asker, args: NameIn) -> Done:
        return Done({"renamed": args.name})

    registry = ToolRegistry()
    registry.register(
        [Tool("rename", "Rename.", Family.SERVER, rename, NameIn, changes=True, guild_only=False)]
    )
    asker = Asker(cast(Any, None), cast(Any, None), None, None)
    toolbox = Toolbox(registry, asker, frozenset(on), families_now=families_now)
    call = types.FunctionCall(name="rename", args={"name": "first"})
    assert (await toolbox.run_all([call]))[0]["function_response"]["response"] == {  # type: ignore[index]
        "renamed": "first"
    }

    on.discard(Family.SERVER)
    call = types.FunctionCall(name="rename", args={"name": "second"})
    assert (await toolbox.run_all([call]))[0]["function_response"]["response"] == {  # type: ignore[index]
        "refused": "The server tools were switched off here meanwhile."
    }


@pytest.mark.parametrize(
    ("question", "address"),
    [
        ("What is this page about?", None),
        ("Is v2.0 out, e.g. for 3.14? Mr. Smith asks.", None),
        ("Does it mention a.example/page or A.EXAMPLE/other?", None),
        ("what about https://evil.example/?d=secret", "https://evil.example/?d=secret"),
        ("see secret-data.evil.example.", "secret-data.evil.example"),
        ("fetch ftp://x.example/y too", "ftp://x.example/y"),
        ("and evil。example/c?d=1", "evil。example/c?d=1"),
        ("and пример.рф?", "пример.рф"),
        ("and 203.0.113.7/c?d=secret", "203.0.113.7/c?d=secret"),
        ("or secret@203.0.113.7", "203.0.113.7"),
        ("or [2001:db8::7]/c?d=secret", "[2001:db8::7]/c?d=secret"),
        ("What do a[1:3] and a[::2] give, in version 3.12.1?", None),
        ("What is said at [1:02:33]? And at [10:00]?", None),
    ],
)
def test_an_address_in_a_question_must_be_one_the_asker_wrote(
    question: str, address: str | None
) -> None:
    assert foreign_address(question, "read https://a.example/page and a.example/other") == address
