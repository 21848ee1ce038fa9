"""SillyTavern character cards: read V1/V2/V3 cards, write V2+V3 cards.

A card is a PNG whose ``chara`` (Character Card V2, base64 JSON) or ``ccv3`` (V3)
text chunk holds the character, the picture being its avatar; or the JSON alone.
V1 cards are the same fields without the ``data`` wrapper; Pygmalion's JSON (of its
editor and text-generation-webui: ``char_name``, ``char_persona``...) is read as
SillyTavern imports it, when it has no ``name``. As in SillyTavern, a V2/V3 field
missing from ``data`` is read from beside it, and a V1 card's creator's comment is its
``creatorcomment``, else its ``creator_notes``. Reading refuses anything
off-spec with one line a user can act on; nothing here touches Discord or the
database. Chunks are read by hand (the format is simple), so a text chunk's size is
bounded by the file's and Pillow only decodes the picture, in :mod:`.avatars`.

Text the database would store changed (a NUL, ``\\u0000`` in the JSON, or half of an
emoji's surrogate pair, ``\\ud83d`` alone) is read changed the same way, to U+FFFD
(`utils.db.storable`), so the character shown on import is the one kept.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import Image, PngImagePlugin

from cogs.roleplay.characters import Profile
from cogs.roleplay.errors import RoleplayError
from utils.db import storable

MAX_CARD_BYTES = 8 * 1024 * 1024
"""A card file (PNG or JSON) past this is refused before it is read."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UTF8_BOM = b"\xef\xbb\xbf"
_SPECS = {"chara_card_v2": "chara", "chara_card_v3": "ccv3"}
_FIELDS = {  # card field -> Profile field
    "name": "name",
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "first_message",
    "mes_example": "example_dialogue",
    "creator_notes": "creator_notes",
}
_V1_FALLBACK = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
"""The fields of a V2 or V3 card that SillyTavern takes from beside its ``data`` when
``data`` lacks them (its own cards carry both)."""
_PLACEHOLDER = "Creator's notes go here."
"""What the V1 and Pygmalion editors put in ``creator_notes``; SillyTavern drops it."""
_PYGMALION = {  # its field -> Profile field, as SillyTavern maps them
    "char_name": "name",
    "char_persona": "description",
    "world_scenario": "scenario",
    "char_greeting": "first_message",
    "example_dialogue": "example_dialogue",
    "creator_notes": "creator_notes",
}


@dataclass(frozen=True, slots=True)
class Card:
    profile: Profile
    image: bytes | None
    """The PNG the card came in (its picture is the avatar), or None for JSON."""


def read_card(data: bytes) -> Card:
    """The character in a card file; RoleplayError with one clear line otherwise."""
    if len(data) > MAX_CARD_BYTES:
        raise RoleplayError(f"That card is over {MAX_CARD_BYTES // (1024 * 1024)} MB.")
    if data.startswith(PNG_SIGNATURE):
        return Card(_from_json(_card_json(data)), data)
    if data.removeprefix(UTF8_BOM).lstrip()[:1] == b"{":  # Notepad may save a BOM first
        return Card(_from_json(_parsed(data, "That card's JSON is not valid.")), None)
    raise RoleplayError("That is not a character card: send a card PNG or its JSON file.")


def _card_json(png: bytes) -> Any:
    """The JSON of the ``ccv3`` chunk if there is one (V3 supersedes), else of ``chara``."""
    texts = png_texts(png, {"ccv3", "chara"})
    encoded = texts.get("ccv3") or texts.get("chara")
    if encoded is None:
        raise RoleplayError("That PNG has no character card in it (no `chara` or `ccv3` chunk).")
    damaged = "That card's character data is damaged (bad base64 or JSON)."
    # As SillyTavern decodes it: line breaks (Python's `encodebytes` wraps at 76) and
    # missing padding are accepted.
    encoded = "".join(encoded.split())
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RoleplayError(damaged) from None
    return _parsed(decoded, damaged)


def _parsed(data: bytes, message: str) -> Any:
    """``data`` as JSON; RoleplayError(message) for bad JSON or UTF-8, and for JSON that
    is valid but unreadable: nested past the recursion limit, or an integer of thousands
    of digits (ValueError, not JSONDecodeError)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise RoleplayError(message) from None


def png_texts(png: bytes, keys: set[str]) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks named in ``keys`` (lowercase), the first of each as
    SillyTavern reads them, whatever the case of their keyword ("Chara" is ``chara``);
    RoleplayError for a broken PNG. A repeat is not even inflated: else a
    file of a thousand small zlib bombs would cost gigabytes of inflating."""
    found: dict[str, str] = {}
    at = len(PNG_SIGNATURE)
    try:
        while at + 8 <= len(png):
            length, kind = struct.unpack(">I4s", png[at : at + 8])
            body = png[at + 8 : at + 8 + length]
            if len(body) < length:
                raise ValueError("truncated chunk")
            at += 12 + length
            if kind == b"IEND":
                break
            if kind in (b"tEXt", b"zTXt", b"iTXt"):
                key, _, rest = body.partition(b"\0")
                name = key.decode("latin-1").lower()
                if name in keys and name not in found:
                    found[name] = _text(kind, rest)
    except (ValueError, struct.error, zlib.error, UnicodeDecodeError):
        raise RoleplayError("That PNG is damaged.") from None
    return found


def _text(kind: bytes, rest: bytes) -> str:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":  # method byte, then zlib data
        return _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        raise ValueError("iTXt chunk too short")
    compressed = rest[0]  # iTXt: flag, method, language\0, translated keyword\0, text
    _, _, rest = rest[2:].partition(b"\0")
    _, _, text = rest.partition(b"\0")
    return (_inflate(text) if compressed else text).decode("utf-8")


def _inflate(data: bytes) -> bytes:
    """zlib, bounded: a small chunk cannot inflate past the card size limit."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_CARD_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out


def _from_json(card: Any) -> Profile:
    if not isinstance(card, dict):
        raise RoleplayError("That card's JSON is not a character card.")
    spec, names = card.get("spec"), _FIELDS
    if spec is None:  # V1: flat fields
        data = _v1(card)
        if "name" not in card and "char_name" in card:  # how SillyTavern tells them apart
            names = _PYGMALION
    elif isinstance(spec, str) and spec in _SPECS:  # a list or an object is unhashable
        data = card.get("data")
        if data is None:  # SillyTavern reads the V1 fields beside it then
            data = _v1(card)
        elif not isinstance(data, dict):
            raise RoleplayError("That card has no `data` section.")
        else:  # a field `data` lacks is the V1 one beside it, as SillyTavern reads it
            data = {**{key: card[key] for key in _V1_FALLBACK if key in card}, **data}
    else:
        raise RoleplayError(f"Unsupported card format `{str(spec)[:40]}` (V1, V2 and V3 work).")
    values = dict.fromkeys(_FIELDS.values(), "")
    for key, field in names.items():
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise RoleplayError(f"The card's `{key}` should be text.")
        values[field] = storable(value.replace("\r\n", "\n"))
    if not values["name"].strip():
        raise RoleplayError("That card has no character name.")
    return Profile(**values).checked()


def _v1(card: dict[str, Any]) -> dict[str, Any]:
    """A V1 or Pygmalion card's fields, its creator's comment as SillyTavern reads it:
    ``creatorcomment``, else ``creator_notes`` without the editors' placeholder."""
    comment = card.get("creatorcomment")
    if comment is None:
        comment = card.get("creator_notes")
        if isinstance(comment, str):
            comment = comment.replace(_PLACEHOLDER, "", 1)
    elif not isinstance(comment, str):
        raise RoleplayError("The card's `creatorcomment` should be text.")
    return {**card, "creator_notes": comment}


def card_json(profile: Profile, spec: str = "chara_card_v2") -> dict[str, Any]:
    """The card of ``profile`` in the V2 or V3 layout (every required field present)."""
    data: dict[str, Any] = {key: getattr(profile, field) for key, field in _FIELDS.items()}
    data.update(
        system_prompt="",
        post_history_instructions="",
        alternate_greetings=[],
        tags=[],
        creator="",
        character_version="",
        extensions={},
    )
    if spec == "chara_card_v3":
        data.update(group_only_greetings=[], assets=[])
        return {"spec": spec, "spec_version": "3.0", "data": data}
    return {"spec": spec, "spec_version": "2.0", "data": data}


def write_png_card(profile: Profile, avatar: bytes) -> bytes:
    """A PNG card: the avatar as the picture, ``chara`` (V2) and ``ccv3`` (V3) chunks.

    Decodes an image: call it in a thread.
    """
    info = PngImagePlugin.PngInfo()
    for spec, chunk in _SPECS.items():
        text = json.dumps(card_json(profile, spec), ensure_ascii=False).encode()
        info.add_text(chunk, base64.b64encode(text).decode("ascii"))
    out = io.BytesIO()
    with Image.open(io.BytesIO(avatar)) as image:
        image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def write_json_card(profile: Profile) -> bytes:
    """A V2 card as JSON, for a character without an avatar."""
    return json.dumps(card_json(profile), ensure_ascii=False, indent=2).encode()
