"""Each server's roleplay characters in the database: who they are and their avatar.

Owns `rp_characters`. Every query names the guild, so one server's characters never
show in another. Names are unique per server regardless of case and of how their
letters are encoded (``name_key`` holds `names.name_key` of the name; a row an older
version keyed differently is still found, by comparing the names themselves).
Avatars are stored as PNG bytes (see :mod:`.avatars`), so they survive their source
disappearing; the columns ``avatar_channel_id``,
``avatar_message_id`` and ``avatar_url`` remember the bot message that carries the
avatar as an attachment, which is how webhooks get a URL Discord can fetch.
Portable SQL: timestamps are unix times from Python.
"""

from __future__ import annotations

import base64
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from discord.utils import escape_markdown

from cogs.roleplay.errors import RoleplayError
from cogs.roleplay.script import NARRATOR
from utils.commands import unquoted
from utils.data_owners import Place
from utils.db import Connection, Database, Row
from utils.text import name_key, truncate

MAX_NAME = 64
MAX_TEXT = 20_000
"""Characters in one text field (cards in the wild run to a few thousand)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What a character is: the text fields a card carries."""

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_message: str = ""
    example_dialogue: str = ""
    creator_notes: str = ""

    def checked(self) -> Profile:
        """This profile with its name trimmed and composed (NFC); RoleplayError when a
        field is out of bounds."""
        name = unicodedata.normalize("NFC", " ".join(self.name.split()))
        key = name_key(name)
        if not key:  # nothing visible: "" or only zero-width characters
            raise RoleplayError("A character needs a name.")
        if len(name) > MAX_NAME:
            raise RoleplayError(f"Keep the name to {MAX_NAME} characters at most.")
        if ":" in key:  # scenes are written as "Name: line"
            raise RoleplayError("A name can't contain a colon (`:`).")
        if key == name_key(NARRATOR):  # "Narrator:" lines are the bot's own narration
            raise RoleplayError(f"**{NARRATOR}** is the scenes' narrator; choose another name.")
        for field in fields(self)[1:]:
            if len(getattr(self, field.name)) > MAX_TEXT:
                label = field.name.replace("_", " ")
                raise RoleplayError(f"The {label} is longer than {MAX_TEXT:,} characters.")
        return Profile(name, *(getattr(self, f.name) for f in fields(self)[1:]))


_PROFILE = ", ".join(f.name for f in fields(Profile))
_COLUMNS = (
    "id, guild_id, creator_id, avatar, avatar_channel_id, avatar_message_id, avatar_url, "
    f"created_at, updated_at, {_PROFILE}"
)


@dataclass(frozen=True, slots=True)
class AvatarLink:
    """The bot message whose attachment is the avatar, and that attachment's URL."""

    channel_id: int
    message_id: int
    url: str


@dataclass(frozen=True, slots=True)
class Character:
    id: int
    guild_id: int
    creator_id: int
    profile: Profile
    avatar: bytes | None
    """PNG bytes, at most :data:`cogs.roleplay.avatars.MAX_SIDE` pixels a side."""
    link: AvatarLink | None
    created_at: float
    updated_at: float

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass(frozen=True, slots=True)
class Listed:
    """A line of ``/character list``."""

    name: str
    creator_id: int
    has_avatar: bool


class CharacterStore:
    """The only reader and writer of ``rp_characters``; knows nothing about Discord."""

    def __init__(self, db: Database, *, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.limit = limit
        """Characters per server (``RP_MAX_CHARACTERS``)."""
        self.clock = clock

    async def create(
        self, guild_id: int, creator_id: int, profile: Profile, avatar: bytes | None
    ) -> Character:
        """Add a character; RoleplayError if the name is taken or the server is full.

        The limit check and the insert share one transaction, so two creations at
        once cannot pass the limit together.
        """
        profile = profile.checked()
        key = name_key(profile.name)
        now = self.clock()
        async with self.db.transaction() as conn:
            keys = await _keys(conn, guild_id)
            if len(keys) >= self.limit:
                raise RoleplayError(
                    f"This server has {self.limit} characters, its limit; delete one first."
                )
            if key in keys.values():
                raise _taken(profile.name)
            character_id = await conn.fetchval(
                f"INSERT INTO rp_characters (guild_id, name_key, creator_id, avatar, "
                f"created_at, updated_at, {_PROFILE}) "
                f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' * len(fields(Profile)))}) "
                "ON CONFLICT (guild_id, name_key) DO NOTHING RETURNING id",
                (guild_id, key, creator_id, avatar, now, now, *_values(profile)),
            )
        if character_id is None:
            raise _taken(profile.name)
        return Character(character_id, guild_id, creator_id, profile, avatar, None, now, now)

    async def get(self, guild_id: int, name: str) -> Character | None:
        """The character called ``name`` (any case or encoding) in this server."""
        key = name_key(name)
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM rp_characters WHERE guild_id = ? AND name_key = ?",
            (guild_id, key),
        )
        if row is None:  # perhaps keyed by an older version: compare the names themselves
            keys = await _keys(self.db, guild_id)
            if found := [i for i, k in keys.items() if k == key]:
                row = await self.db.fetchone(
                    f"SELECT {_COLUMNS} FROM rp_characters WHERE guild_id = ? AND id = ?",
                    (guild_id, found[0]),
                )
        return None if row is None else _character(row)

    async def named(self, guild_id: int, name: str) -> Character:
        """The character a person named in this server; RoleplayError if none. A name in
        quotes is also looked up without them: typed commands take the rest of the line
        as it is (`!character show "Aria Moon"`)."""
        if not name_key(name):  # "" or only spaces and invisible characters
            raise RoleplayError("Name a character: that name shows nothing.")
        character = await self.get(guild_id, name)
        if character is None and (bare := unquoted(name)) != name.strip():
            character = await self.get(guild_id, bare)
        if character is None:
            shown = escape_markdown(truncate(name, MAX_NAME))
            raise RoleplayError(f"This server has no character called **{shown}**.")
        return character

    async def by_ids(self, guild_id: int, ids: Sequence[int]) -> list[Character]:
        """This server's characters of ``ids``, in that order; deleted ones are left out."""
        if not ids:
            return []  # PostgreSQL refuses an empty IN ()
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM rp_characters WHERE guild_id = ? "
            f"AND id IN ({', '.join('?' * len(ids))})",
            (guild_id, *ids),
        )
        found = {row["id"]: _character(row) for row in rows}
        return [found[i] for i in ids if i in found]

    async def listing(self, guild_id: int) -> list[Listed]:
        """This server's characters by name (no avatars loaded)."""
        rows = await self.db.fetchall(
            "SELECT name, creator_id, avatar IS NOT NULL, name_key FROM rp_characters "
            "WHERE guild_id = ?",
            (guild_id,),
        )
        return [Listed(row[0], row[1], bool(row[2])) for row in _by_key(rows)]

    async def names(self, guild_id: int, start: str, limit: int = 25) -> list[str]:
        """Names containing ``start`` (any case), for autocompletion."""
        pattern = name_key(start).replace("!", "!!").replace("%", "!%").replace("_", "!_")
        rows = await self.db.fetchall(
            "SELECT name, name_key FROM rp_characters "
            "WHERE guild_id = ? AND name_key LIKE ? ESCAPE '!'",
            (guild_id, f"%{pattern}%"),
        )
        return [row[0] for row in _by_key(rows)[:limit]]

    async def update(
        self, character: Character, profile: Profile, avatar: bytes | None
    ) -> Character:
        """Replace a character's profile and avatar (a new avatar drops the old link);
        RoleplayError if it was changed or deleted since ``character`` was read."""
        profile = profile.checked()
        key = name_key(profile.name)
        now = self.clock()
        link = character.link if avatar == character.avatar else None
        async with self.db.transaction() as conn:
            # Asked rather than caught from the unique index: each driver names that error
            # its own way, and rows keyed by an older version would not trip it.
            keys = await _keys(conn, character.guild_id)
            if any(k == key for i, k in keys.items() if i != character.id):
                raise _taken(profile.name)
            changed = await conn.execute(
                f"UPDATE rp_characters SET name_key = ?, avatar = ?, avatar_channel_id = ?, "
                f"avatar_message_id = ?, avatar_url = ?, updated_at = ?, "
                f"{', '.join(f'{f.name} = ?' for f in fields(Profile))} "
                f"WHERE guild_id = ? AND id = ? AND updated_at = ?",  # as it was read
                (
                    key,
                    avatar,
                    link and link.channel_id,
                    link and link.message_id,
                    link and link.url,
                    now,
                    *_values(profile),
                    character.guild_id,
                    character.id,
                    character.updated_at,
                ),
            )
            still = changed or character.id in keys
        name = escape_markdown(character.name)
        if not still:
            raise RoleplayError(f"**{name}** was deleted meanwhile.")
        if not changed:  # another edit came first: this one, from before it, would undo it
            raise RoleplayError(f"**{name}** was changed meanwhile; please try again.")
        return Character(
            character.id,
            character.guild_id,
            character.creator_id,
            profile,
            avatar,
            link,
            character.created_at,
            now,
        )

    async def set_link(self, character: Character, link: AvatarLink | None) -> None:
        """Remember (or forget) the message that carries the avatar of ``character`` as
        it was read; nothing changes if it was edited since: a link found for its old
        avatar would bring that avatar back."""
        await self.db.execute(
            "UPDATE rp_characters SET avatar_channel_id = ?, avatar_message_id = ?, "
            "avatar_url = ? WHERE guild_id = ? AND id = ? AND updated_at = ?",
            (
                link and link.channel_id,
                link and link.message_id,
                link and link.url,
                character.guild_id,
                character.id,
                character.updated_at,
            ),
        )

    async def delete(self, character: Character) -> bool:
        return bool(
            await self.db.execute(
                "DELETE FROM rp_characters WHERE guild_id = ? AND id = ?",
                (character.guild_id, character.id),
            )
        )

    async def delete_channel(self, channel_id: int) -> int:
        """Characters belong to a server, not a channel: nothing goes. An avatar link
        into the channel is dropped; the next use uploads the avatar again."""
        await self.db.execute(
            "UPDATE rp_characters SET avatar_channel_id = NULL, avatar_message_id = NULL, "
            "avatar_url = NULL WHERE avatar_channel_id = ?",
            (channel_id,),
        )
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        return await self.db.execute("DELETE FROM rp_characters WHERE guild_id = ?", (guild_id,))

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall(
            "SELECT DISTINCT guild_id, avatar_channel_id FROM rp_characters"
        )
        return {(row[0], row[1]) for row in rows}

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, object]]]:
        """A guild's characters as (table, row) pairs, the avatar's PNG in base64."""
        rows = await self.db.fetchall(
            "SELECT * FROM rp_characters WHERE guild_id = ? ORDER BY id", (guild_id,)
        )
        exported = []
        for row in rows:
            values = dict(row)
            if values["avatar"] is not None:
                values["avatar"] = base64.b64encode(bytes(values["avatar"])).decode()
            exported.append(("rp_characters", values))
        return exported


def _by_key(rows: list[Row]) -> list[Row]:
    """Rows in the order of their ``name_key``, by code point: the same on both backends
    (PostgreSQL's ORDER BY follows the database's collation, e.g. en_US's puts "~" first).
    A server has at most RP_MAX_CHARACTERS rows to sort."""
    return sorted(rows, key=lambda row: row["name_key"])


async def _keys(conn: Connection, guild_id: int) -> dict[int, str]:
    """Each of the server's characters' id and `name_key`, computed from its name: a
    stored key of an older version may differ."""
    rows = await conn.fetchall("SELECT id, name FROM rp_characters WHERE guild_id = ?", (guild_id,))
    return {row[0]: name_key(row[1]) for row in rows}


def _character(row: Row) -> Character:
    link = None
    if row["avatar_url"] is not None:
        link = AvatarLink(row["avatar_channel_id"], row["avatar_message_id"], row["avatar_url"])
    return Character(
        row["id"],
        row["guild_id"],
        row["creator_id"],
        Profile(*(row[f.name] for f in fields(Profile))),
        row["avatar"],
        link,
        row["created_at"],
        row["updated_at"],
    )


def _values(profile: Profile) -> tuple[str, ...]:
    return tuple(getattr(profile, f.name) for f in fields(Profile))


def _taken(name: str) -> RoleplayError:
    return RoleplayError(f"This server already has a character called **{escape_markdown(name)}**.")
