"""What the music looks like: times, progress bars, embeds, buttons, queue pages."""

from __future__ import annotations

from cogs.music.tracks import LoopMode, Track
from cogs.music.views import (
    Queued,
    clean,
    controls,
    format_time,
    now_playing_embed,
    progress_bar,
    queue_embed,
    track_line,
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


def test_a_title_cannot_make_a_link_of_its_own() -> None:
    # In a message the address shows as itself, without a preview of its page.
    assert clean("[Free Nitro](https://evil.example) \\](x)") == (
        "\\[Free Nitro\\]\\(<https://evil.example>\\) \\\\\\]\\(x\\)"
    )
    spoof = Track("Video](https://evil.example/nitro) ", "s", 1, 20.0, "https://x.example/v")
    assert track_line(spoof) == (
        "[Video\\]\\(https://evil.example/nitro\\) ](<https://x.example/v>) `0:20`"
    )


def test_a_page_url_cannot_add_a_link_of_its_own() -> None:
    """A link's page URL is the asker's (or a playlist page's) to write: one that would
    close the link target early is not made a link, so its rest cannot be markdown."""
    for spoof in (
        "https://x.example/a>)[Free Nitro](https://evil.example",
        "https://x.example/a b",
    ):
        assert track_line(Track("Song", "s", 1, 20.0, spoof)) == "**Song** `0:20`"


def test_long_page_urls_are_not_made_links() -> None:
    long = Track("Song", "s", 1, 20.0, "https://x.example/" + "a" * 300)
    assert track_line(long) == "**Song** `0:20`"


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


def test_controls_carry_the_state_in_their_labels_and_the_play_in_their_ids() -> None:
    view = controls(paused=True, loop=LoopMode.TRACK, play="0a1b2c3d")
    buttons = {item.item.custom_id: item.item.label for item in view.children}  # type: ignore[attr-defined]
    assert buttons == {
        "music:toggle:0a1b2c3d": "Resume",
        "music:skip:0a1b2c3d": "Skip",
        "music:stop:0a1b2c3d": "Stop",
        "music:loop:0a1b2c3d": "Loop: track",
        "music:shuffle:0a1b2c3d": "Shuffle",
    }
    assert view.timeout is None


def test_queue_embed() -> None:
    embed = queue_embed(TRACK, [(11, TRACK)], page=2, pages=2, total=11, loop=LoopMode.OFF)
    line = track_line(TRACK)
    assert embed.description == f"**Now playing**\n{line}\n\n**Up next (11)**\n`11.` {line}"
    assert embed.footer.text == "Page 2/2 · loop: off"


def test_a_full_queue_page_fits_its_embed() -> None:
    """Ten of the longest lines: within the description's 4096 characters, none cut off."""
    longest = Track("[" * 200, "s", 1, 360_000.0, "https://x.example/" + "a" * 182, autoplay=True)
    entries = [(490 + n, longest) for n in range(10)]
    embed = queue_embed(longest, entries, page=50, pages=50, total=500, loop=LoopMode.OFF)
    assert embed.description is not None and len(embed.description) <= 4096
    assert embed.description.endswith(f"`499.` {track_line(longest)}")
    assert len(embed) <= 6000


def test_what_a_play_queued_counts_one_track_as_one_track() -> None:
    song = Track("Song", "https://x.example/s", 42)
    assert Queued([song], "Mix", busy=True, position=1).message() == (
        "➕ Queued 1 track from **Mix**."
    )
    assert Queued([song], "Mix", busy=True, position=1, total=3).message() == (
        "➕ Queued 1 of 3 tracks from **Mix**: that's all the queue takes now."
    )
    assert Queued([song, song], None, busy=True, position=1).message() == "➕ Queued 2 tracks."
