"""What the music looks like: times, progress bars, embeds, buttons, queue pages."""

from __future__ import annotations

from cogs.music.tracks import LoopMode, Track
from cogs.music.views import (
    clean,
    controls,
    format_time,
    now_playing_embed,
    progress_bar,
    queue_embed,
)

TRACK = Track("Song *bold* @everyone", "https://x.example/s", 42, 200.0, "https://x.example/s")


def test_format_time() -> None:
    assert [format_time(s) for s in (0, 9.9, 61, 3600, 3725)] == [
        "0:00",
        "0:09",
        "1:01",
        "1:00:00",
        "1:02:05",
    ]
    assert format_time(None) == "live"


def test_progress_bar() -> None:
    assert progress_bar(0, 200, width=10) == "🔘▬▬▬▬▬▬▬▬▬ 0:00 / 3:20"
    assert progress_bar(100, 200, width=10) == "▬▬▬▬▬🔘▬▬▬▬ 1:40 / 3:20"
    assert progress_bar(500, 200, width=10) == "▬▬▬▬▬▬▬▬▬🔘 3:20 / 3:20"
    assert progress_bar(75, None) == "1:15 / live"


def test_titles_cannot_ping_or_format() -> None:
    assert clean("*x* @everyone <@123456789012345678>") == (
        "\\*x\\* @\u200beveryone <@\u200b123456789012345678>"
    )
    assert len(clean("a" * 500)) == 100


def test_now_playing_embed() -> None:
    embed = now_playing_embed(
        TRACK, position=50, paused=True, loop=LoopMode.QUEUE, volume=80, upcoming=3
    )
    assert embed.title == "Paused"
    assert embed.description is not None
    assert embed.description.startswith(
        "[Song \\*bold\\* @\u200beveryone](<https://x.example/s>) `3:20`"
    )
    assert "0:50 / 3:20" in embed.description
    assert {f.name: f.value for f in embed.fields} == {
        "Requested by": "<@42>",
        "Loop": "queue",
        "Volume": "80 %",
    }
    assert embed.footer.text == "3 up next"


def test_controls_carry_the_state_in_their_labels() -> None:
    view = controls(paused=True, loop=LoopMode.TRACK)
    buttons = {item.item.custom_id: item.item.label for item in view.children}  # type: ignore[attr-defined]
    assert buttons == {
        "music:toggle": "Resume",
        "music:skip": "Skip",
        "music:stop": "Stop",
        "music:loop": "Loop: track",
        "music:shuffle": "Shuffle",
    }
    assert view.timeout is None


def test_queue_embed() -> None:
    embed = queue_embed(TRACK, [(11, TRACK)], page=2, pages=2, total=11, loop=LoopMode.OFF)
    assert embed.fields[1].name == "Up next (11)"
    assert embed.fields[1].value is not None and embed.fields[1].value.startswith("`11.` [Song")
    assert embed.footer.text == "Page 2/2 · loop: off"
