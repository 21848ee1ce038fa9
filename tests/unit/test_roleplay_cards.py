"""SillyTavern cards: V1/V2/V3 read from PNG chunks and JSON, written back, refused cleanly."""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import zlib
from dataclasses import replace

import pytest
from PIL import Image, PngImagePlugin

from cogs.roleplay.cards import png_texts, read_card, write_json_card, write_png_card
from cogs.roleplay.characters import MAX_TEXT, CharacterStore, Profile
from cogs.roleplay.errors import RoleplayError
from utils.db import Database

SERA = {
    "name": "Seraphina",
    "description": "A guardian of the forest glade.",
    "personality": "gentle, protective",
    "scenario": "You wake up in her cottage.",
    "first_mes": "*She smiles.* You're awake!",
    "mes_example": "<START>\n{{char}}: Rest now.",
    "creator_notes": "Best with a slow pace.",
}
PROFILE = Profile(
    "Seraphina",
    "A guardian of the forest glade.",
    "gentle, protective",
    "You wake up in her cottage.",
    "*She smiles.* You're awake!",
    "<START>\n{{char}}: Rest now.",
    "Best with a slow pace.",
)


def png(chunks: dict[str, str] | None = None, *, itxt: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (chunks or {}).items():
        if itxt:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (40, 60), (200, 30, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def b64(card: object) -> str:
    return base64.b64encode(json.dumps(card).encode()).decode()


def v2(data: dict) -> dict:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def v3(data: dict) -> dict:
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def test_v2_png_card() -> None:
    card = read_card(png({"chara": b64(v2(SERA))}))
    assert card.profile == PROFILE
    assert card.image is not None and card.image.startswith(b"\x89PNG")


def test_v3_png_card_wins_over_its_v2_chunk() -> None:
    data = png({"chara": b64(v2({**SERA, "name": "Old"})), "ccv3": b64(v3(SERA))}, itxt=True)
    assert read_card(data).profile == PROFILE


def test_json_cards_v2_and_v1_flat() -> None:
    assert read_card(json.dumps(v2(SERA)).encode()) == read_card(json.dumps(SERA).encode())
    card = read_card(json.dumps(SERA).encode())
    assert card.profile == PROFILE and card.image is None


def test_missing_fields_are_empty_and_windows_newlines_normalised() -> None:
    card = read_card(
        json.dumps(v2({"name": "Bo", "description": "a\r\nb", "mes_example": None})).encode()
    )
    assert card.profile == Profile("Bo", "a\nb")


def test_a_card_chunk_keyword_in_another_case_is_read_as_sillytavern_reads_it() -> None:
    assert read_card(png({"Chara": b64(v2(SERA))})).profile == PROFILE
    mixed = png({"CHARA": b64(v2({**SERA, "name": "Old"})), "CcV3": b64(v3(SERA))}, itxt=True)
    assert read_card(mixed).profile == PROFILE


def test_a_pygmalion_json_card_imports_as_sillytavern_maps_it() -> None:
    """Pygmalion's editor and text-generation-webui write ``char_name`` and friends; a
    card with a ``name`` too is a V1 card, as SillyTavern reads it."""
    pygmalion = {
        "char_name": "Seraphina",
        "char_persona": "A guardian of the forest glade.",
        "world_scenario": "You wake up in her cottage.",
        "char_greeting": "*She smiles.* You're awake!",
        "example_dialogue": "<START>\n{{char}}: Rest now.",
        "creator_notes": "Best with a slow pace.",
    }
    card = read_card(json.dumps(pygmalion).encode())
    assert card.profile == replace(PROFILE, personality="") and card.image is None
    assert read_card(json.dumps({**pygmalion, "name": "Sera"}).encode()).profile.name == "Sera"
    with pytest.raises(RoleplayError, match="`char_persona` should be text"):
        read_card(json.dumps({**pygmalion, "char_persona": 5}).encode())


def creator_notes(card: dict, **fields: object) -> str:
    return read_card(json.dumps({**card, **fields}).encode()).profile.creator_notes


def test_v1_and_pygmalion_cards_keep_the_creators_comment_as_sillytavern_reads_it() -> None:
    """SillyTavern takes ``creatorcomment`` (what it writes itself), else
    ``creator_notes`` without the editors' "Creator's notes go here." placeholder."""
    pygmalion = {"char_name": "Seraphina", "char_persona": "A guardian."}
    for flat in (SERA, pygmalion):
        bare = {k: v for k, v in flat.items() if k != "creator_notes"}
        notes = functools.partial(creator_notes, bare)
        assert notes(creatorcomment="Slow pace.") == "Slow pace."
        assert notes(creatorcomment="Slow pace.", creator_notes="Other.") == "Slow pace."
        assert notes(creatorcomment="", creator_notes="Other.") == ""
        assert notes(creatorcomment=None, creator_notes="Other.") == "Other."
        assert notes(creator_notes="Creator's notes go here. Slow pace.") == " Slow pace."
        with pytest.raises(RoleplayError, match="`creatorcomment` should be text"):
            notes(creatorcomment=["Slow pace."])
    # A V2 card's notes are its data's; a creatorcomment beside them is SillyTavern's copy.
    card = read_card(json.dumps({**v2(SERA), "creatorcomment": "Other."}).encode())
    assert card.profile.creator_notes == "Best with a slow pace."


def test_a_v2_card_missing_fields_in_its_data_reads_them_beside_it_as_sillytavern() -> None:
    """SillyTavern's cards carry the V1 fields beside ``data``; some makers fill only
    those, or leave ``data`` out: SillyTavern reads them there, and so do we."""
    partial = {"name": "Seraphina", "description": "A guardian of the forest glade."}
    card = {**SERA, **v2(partial)}
    assert read_card(json.dumps(card).encode()).profile == replace(PROFILE, creator_notes="")
    beside = {**SERA, "spec": "chara_card_v2", "spec_version": "2.0"}
    assert read_card(png({"chara": b64(beside)})).profile == PROFILE
    # What `data` holds wins, even empty.
    card = {**SERA, **v2({**partial, "name": "Sera", "first_mes": None})}
    profile = read_card(json.dumps(card).encode()).profile
    assert (profile.name, profile.first_message) == ("Sera", "")


def test_round_trip_through_png_and_json() -> None:
    first = read_card(png({"chara": b64(v2(SERA))}))
    assert first.image is not None
    exported = write_png_card(first.profile, first.image)
    texts = png_texts(exported, {"chara", "ccv3"})
    assert json.loads(base64.b64decode(texts["chara"]))["spec"] == "chara_card_v2"
    assert json.loads(base64.b64decode(texts["ccv3"]))["spec"] == "chara_card_v3"
    assert read_card(exported).profile == first.profile
    with Image.open(io.BytesIO(exported)) as image:
        assert image.size == (40, 60)
    assert read_card(write_json_card(first.profile)).profile == first.profile


def test_unicode_survives_the_round_trip() -> None:
    profile = Profile("Åsa 雪", "She says «bonjour» ✨")
    exported = write_png_card(profile, png())
    assert read_card(exported).profile == profile


async def test_a_card_with_a_nul_or_half_an_emoji_imports_as_it_is_shown(db: Database) -> None:
    """JSON escapes the database cannot keep as they are, "\\u0000" and half of an
    emoji's "\\ud83d\\ude00" pair, are read as U+FFFD: the card imports on either
    backend (it said "something went wrong"), and the character shown is the one kept."""
    card = read_card(b'{"name": "Nyx\\ud83d", "description": "dark\\u0000ness"}')
    assert card.profile == Profile("Nyx\ufffd", "dark\ufffdness")
    store = CharacterStore(db, limit=10)
    made = await store.create(1, 10, card.profile, None)
    assert await store.get(1, "Nyx\ufffd") == made


def test_a_json_card_saved_with_a_byte_order_mark_imports() -> None:
    assert read_card(b"\xef\xbb\xbf" + json.dumps(v2(SERA)).encode()).profile == PROFILE


def _damaged_png() -> bytes:
    data = png({"chara": b64(v2(SERA))})
    return data[: len(data) // 2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _with_chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG with one more chunk right after its header."""
    data = png()
    return data[:33] + _chunk(kind, body) + data[33:]


def _bomb() -> bytes:
    """A zTXt ``chara`` chunk's body that inflates far past the card limit."""
    return b"chara\0\0" + zlib.compress(b"A" * (20 * 1024 * 1024))


def _bomb_chunk() -> bytes:
    return _with_chunk(b"zTXt", _bomb())


def test_a_repeated_card_chunk_is_read_as_sillytavern_reads_it_the_first() -> None:
    """Repeats are skipped unread: here zlib bombs, each inflating past the card limit."""
    data = png({"chara": b64(v2(SERA))})
    end = data.index(b"IEND") - 4
    assert read_card(data[:end] + _chunk(b"zTXt", _bomb()) * 3 + data[end:]).profile == PROFILE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a not a card", "not a character card"),
        (png(), "no character card in it"),
        (png({"chara": "!!!not base64!!!"}), "damaged (bad base64 or JSON)"),
        (png({"chara": base64.b64encode(b"{nope").decode()}), "damaged (bad base64 or JSON)"),
        (_damaged_png(), "PNG is damaged"),
        (_bomb_chunk(), "PNG is damaged"),
        (_with_chunk(b"iTXt", b"chara\0"), "PNG is damaged"),  # no flag, method or text
        (_with_chunk(b"iTXt", b"chara\0\0"), "PNG is damaged"),
        (b"{not json", "JSON is not valid"),
        (b"[1, 2]", "not a character card"),
        (json.dumps(v2({**SERA, "name": " "})).encode(), "no character name"),
        (json.dumps({"description": "nameless"}).encode(), "no character name"),
        (json.dumps({"spec": "chara_card_v9", "data": SERA}).encode(), "Unsupported card format"),
        (json.dumps({"spec": "chara_card_v2", "data": "x"}).encode(), "no `data` section"),
        (json.dumps({"spec": ["chara_card_v2"], "data": SERA}).encode(), "Unsupported card"),
        (b'{"name": "A", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON is not valid"),
        (b'{"name": "A", "x": ' + b"1" * 5000 + b"}", "JSON is not valid"),  # int too long
        (png({"chara": base64.b64encode(b"[" * 100_000).decode()}), "damaged (bad base64"),
        (json.dumps(v2({**SERA, "description": 5})).encode(), "`description` should be text"),
        (json.dumps(v2({**SERA, "description": "x" * (MAX_TEXT + 1)})).encode(), "longer than"),
        (b"{" + b" " * (8 * 1024 * 1024), "over 8 MB"),
    ],
)
def test_broken_cards_get_one_clear_line(data: bytes, message: str) -> None:
    with pytest.raises(RoleplayError, match=re.escape(message)) as caught:
        read_card(data)
    assert "\n" not in str(caught.value)


def test_a_card_whose_base64_is_wrapped_or_unpadded_imports_as_in_sillytavern() -> None:
    """SillyTavern's decoder (Node's) skips line breaks and needs no padding; cards
    written with Python's ``base64.encodebytes`` wrap every 76 characters."""
    wrapped = base64.encodebytes(json.dumps(v2(SERA)).encode()).decode()
    assert "\n" in wrapped
    assert read_card(png({"chara": wrapped})).profile == PROFILE
    unpadded = b64(v2({**SERA, "name": "Seraphina!"})).rstrip("=")
    assert len(unpadded) % 4 and read_card(png({"chara": unpadded})).profile.name == "Seraphina!"
