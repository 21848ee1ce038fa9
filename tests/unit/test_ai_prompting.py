"""Request building: summary first, older turns as one transcript part, recent turns as turns;
recalled memories and the one label of the bot; GIF attachments as bounded PNGs."""

from __future__ import annotations

import io
import itertools
import re
import struct
from pathlib import Path

import pytest
from PIL import Image

from cogs.ai.personas import MAX_PERSONA_BYTES, SHIPPED_DIR, load_personas, parse_persona
from cogs.ai.prompting import (
    MEMORY_HEADER,
    RECENT_TURNS,
    Attachment,
    UserInput,
    attachment_part,
    build_contents,
    check_attachment,
    memory_section,
    note_of,
    summary_request,
    system_instruction,
)
from cogs.ai.records import Turn
from utils.errors import BotError
from utils.memory import consolidation
from utils.memory.chunks import Exchange
from utils.memory.records import Recalled, Scope


def turns(n: int) -> list[Turn]:
    return [
        Turn("user" if i % 2 == 0 else "model", 7, "alice", f"text {i}", id=i, tokens=2)
        for i in range(n)
    ]


def test_short_history_goes_turn_by_turn() -> None:
    contents = build_contents(None, turns(RECENT_TURNS), UserInput("bob", "hi"))
    assert [c["role"] for c in contents] == ["user", "model"] * (RECENT_TURNS // 2) + ["user"]
    assert contents[0]["parts"][0]["text"] == "alice: text 0"
    assert contents[1]["parts"][0]["text"] == "text 1"
    assert contents[-1]["parts"][0]["text"] == "bob: hi"


def test_long_history_packs_older_turns_after_the_summary() -> None:
    contents = build_contents("they met", turns(30), UserInput("bob", "hi"))
    # Same-role neighbours are merged, their texts joined into one part: the opening
    # ends with the first recent turn (a user's).
    opening, first_recent = contents[0]["parts"][0]["text"].rsplit("\n\n", 1)
    assert opening.startswith("(Summary of the earlier conversation: they met)")
    assert "alice: text 0\nassistant: text 1" in opening
    assert f"text {30 - RECENT_TURNS - 1}" in opening
    assert f"text {30 - RECENT_TURNS}" not in opening
    assert first_recent == f"alice: text {30 - RECENT_TURNS}"
    assert [len(c["parts"]) for c in contents] == [1] * len(contents)
    roles = [c["role"] for c in contents]
    assert all(a != b for a, b in itertools.pairwise(roles)) and roles[-1] == "user"


def test_custom_prompt_replaces_the_persona() -> None:
    persona = parse_persona("pirate", "# Captain\nA pirate.\n\nSpeak like a pirate.")
    assert persona.title == "Captain" and persona.description == "A pirate."
    assert system_instruction(persona, None, "#general").startswith("A pirate.")
    custom = system_instruction(persona, "Be brief.", "#general")
    assert custom.startswith("Be brief.") and "pirate" not in custom


def test_a_persona_written_without_a_description_line_is_shown_short() -> None:
    """An operator's persona may start its instructions right after the title: lists
    and `/ai persona show` show its start, and the model still gets all of it."""
    rhyme = "You are a bard who answers in rhyme. " * 80
    persona = parse_persona("bard", f"# {'Bard ' * 40}\n\n{rhyme}")
    assert len(persona.title) <= 100 and len(persona.description) <= 200
    assert persona.description.startswith("You are a bard") and persona.description.endswith("…")
    assert persona.prompt == rhyme.strip()


def test_a_persona_whose_title_line_is_empty_is_named_after_its_file() -> None:
    """Discord refuses an embed field or a choice with an empty name: `/ai status` and
    the persona list must get a title even when the file's `# ` line has none."""
    persona = parse_persona("night-owl", "# \nA late-night helper.\n\nBe calm.")
    assert persona.title == "Night-Owl"
    assert persona.description == "A late-night helper."


def test_a_bad_persona_file_is_skipped_with_one_line_and_the_others_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's persona file in another encoding, too big or unreadable costs that
    persona only: the AI cog still loads with every other one."""
    shipped, extra = tmp_path / "shipped", tmp_path / "extra"
    shipped.mkdir()
    extra.mkdir()
    (shipped / "default.md").write_text("# Default\nHelpful.\n\nBe helpful.")
    (extra / "latin.md").write_bytes("# Café\nÇa va.".encode("cp1252"))
    (extra / "huge.md").write_text("# Huge\n" + "x" * MAX_PERSONA_BYTES)
    (extra / "folder.md").mkdir()
    (extra / "bom.md").write_bytes("\ufeff# Bom\nSaved by Notepad.".encode())
    (extra / "pirate.md").write_text("# Captain\nA pirate.\n\nArr.")
    with caplog.at_level("WARNING", logger="cogs.ai.personas"):
        personas = load_personas(shipped, extra)
    assert sorted(personas) == ["bom", "default", "pirate"]
    assert personas["bom"].title == "Bom"
    assert len(caplog.records) == 3
    assert all("skipping persona" in r.getMessage() for r in caplog.records)


def test_a_default_persona_with_no_file_is_named_in_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="cogs.ai.personas"):
        personas = load_personas(SHIPPED_DIR, default="pirat")
        load_personas(SHIPPED_DIR, default="pirate")
    assert "default" in personas
    assert [r.getMessage() for r in caplog.records] == [
        "AI_DEFAULT_PERSONA 'pirat' has no persona file; using 'default'"
    ]


@pytest.mark.parametrize("kept", [1, 2])
def test_contents_open_with_a_user_turn_when_the_history_opens_with_a_reply(kept: int) -> None:
    """Gemini refuses contents that open with its own turn (400): a reply whose question
    was deleted, kept alone or with a reply after it, goes in an opening transcript."""
    history = [Turn("model", 0, "assistant", f"answer {i}", id=i) for i in range(kept)]
    contents = build_contents(None, history, UserInput("alice", "and now?"))
    assert contents[0]["role"] == "user"
    said = "\n\n".join(part["text"] for c in contents for part in c["parts"])
    assert all(f"answer {i}" in said for i in range(kept))
    assert contents[-1]["parts"][-1]["text"].endswith("alice: and now?")


def test_a_reply_that_stopped_early_says_so_in_the_context() -> None:
    history = [
        Turn("user", 7, "alice", "tell a story", id=1),
        Turn("model", 0, "assistant", "Once upon", incomplete="restart", id=2),
        Turn("user", 7, "alice", "and the poem?", id=3),
        Turn("model", 0, "assistant", "Roses are", incomplete="length", id=4),
    ]
    contents = build_contents(None, history, UserInput("alice", "go on"))
    opening = contents[0]["parts"][0]["text"]
    assert "assistant: Once upon\n[this reply was cut off: restart]" in opening
    assert contents[-2] == {
        "role": "model",
        "parts": [{"text": "Roses are\n[this reply was cut off: length]"}],
    }


def test_the_bot_has_one_label_in_the_prompt_the_summary_and_memory() -> None:
    said = [Turn("user", 7, "alice", "hi", id=1), Turn("model", 0, "Bot", "hello", id=2)]
    history = said * 3  # older turns go in the transcript
    transcript = build_contents(None, history, UserInput("alice", "x"))[0]["parts"][0]["text"]
    summary = summary_request(None, said)[0]["parts"][0]["text"]
    memory = "\n".join(Exchange.of(Scope("guild", 1), 5, said, 0.0).lines)
    facts = consolidation.request(said)[0]["parts"][0]["text"]
    facts = re.sub(r"^\[\d+\] ", "", facts, flags=re.MULTILINE)  # its lines are numbered
    for text in (transcript, summary, memory, facts):
        assert "alice: hi\nassistant: hello" in text, text
    assert "'assistant'" in system_instruction(parse_persona("p", "A."), None, "#general")


def test_recalled_memories_are_rendered_with_their_age() -> None:
    assert memory_section([]) == ""
    recalled = [
        Recalled(1, "alice: My cat is named Whiskers.", "user", 3600.0, 0.9),
        Recalled(2, "alice: hi\nassistant: hello", "conversation", 3 * 86_400.0, 0.5),
    ]
    assert memory_section(recalled) == (
        f"\n\n{MEMORY_HEADER}\n- (today) alice: My cat is named Whiskers."
        "\n- (3 days ago) alice: hi\n  assistant: hello"
    )


def gif(size: tuple[int, int], claimed: tuple[int, int] | None = None) -> bytes:
    """A GIF of ``size``; its header may claim another size (cheap to make, not to decode)."""
    out = io.BytesIO()
    Image.new("P", size).save(out, format="GIF")
    data = out.getvalue()
    return data if claimed is None else data[:6] + struct.pack("<HH", *claimed) + data[10:]


TOO_LARGE = "`a.gif` is too large for me (limit 25,000,000 pixels)."


async def test_a_gif_goes_as_the_png_of_its_first_frame() -> None:
    data = gif((30, 20))
    part = await attachment_part(Attachment("a.gif", "image/gif", len(data), data))
    inline = part.get("inline_data") or {}
    assert inline.get("mime_type") == "image/png"
    with Image.open(io.BytesIO(inline.get("data") or b"")) as png:
        assert png.format == "PNG" and png.size == (30, 20)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gif((1, 1), claimed=(6000, 5000)), TOO_LARGE),
        (gif((1, 1), claimed=(65535, 65535)), TOO_LARGE),
        (gif((30, 20))[:20], "I couldn't read the image `a.gif`."),
        (b"GIF89a but not really", "I couldn't read the image `a.gif`."),
    ],
    ids=["over the cap", "over Pillow's limit", "truncated", "not a GIF"],
)
async def test_a_gif_too_large_or_damaged_gets_one_short_line(data: bytes, message: str) -> None:
    with pytest.raises(BotError, match=f"^{re.escape(message)}$"):
        await attachment_part(Attachment("a.gif", "image/gif", len(data), data))


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "fmt", "mime"),
    [
        ("e.PNG", "PNG", "image/png"),
        ("photo.JPG", "JPEG", "image/jpeg"),
        ("sticker.WebP", "WEBP", "image/webp"),
        ("saved.png", "JPEG", "image/jpeg"),  # the bytes say what it is
    ],
)
async def test_an_image_discord_names_no_type_for_goes_as_an_image(
    name: str, fmt: str, mime: str
) -> None:
    data = image(fmt)
    attachment = Attachment(name, "", len(data))
    assert check_attachment(attachment, 10_000_000)
    assert note_of(attachment) == f"[image: {name}]"
    attachment.data = data
    part = await attachment_part(attachment)
    inline = part.get("inline_data") or {}
    assert inline.get("mime_type") == mime and inline.get("data") == data


@pytest.mark.parametrize(
    "data",
    [
        "naïve café\n".encode("utf-16"),  # what Windows PowerShell's `>` writes
        b"\xfe\xff" + "naïve café\n".encode("utf-16-be"),
        "naïve café\n".encode("utf-8-sig"),
        "naïve café\n".encode(),
    ],
    ids=["utf-16 le", "utf-16 be", "utf-8 with bom", "utf-8"],
)
async def test_a_text_file_reads_the_same_in_utf8_or_utf16(data: bytes) -> None:
    part = await attachment_part(Attachment("log.txt", "text/plain", len(data), data))
    assert part.get("text") == "[file log.txt]\n```\nnaïve café\n\n```"
