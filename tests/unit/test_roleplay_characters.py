"""The character store: one server's characters stay there, names unique, a limit held."""

from __future__ import annotations

import asyncio
import unicodedata

import pytest

from cogs.roleplay.characters import AvatarLink, CharacterStore, Profile
from cogs.roleplay.errors import RoleplayError
from utils.db import Database

GUILD, OTHER = 1, 2


@pytest.fixture
def store(db: Database) -> CharacterStore:
    return CharacterStore(db, limit=3)


async def test_create_get_and_list_within_one_server(store: CharacterStore) -> None:
    made = await store.create(GUILD, 10, Profile("  Sera   Phina ", "forest"), b"png")
    assert made.name == "Sera Phina"
    found = await store.get(GUILD, "sera phina")
    assert found == made
    await store.create(OTHER, 11, Profile("Sera Phina", "desert"), None)
    assert (await store.get(OTHER, "Sera Phina")).profile.description == "desert"  # type: ignore[union-attr]
    assert [(c.name, c.creator_id, c.has_avatar) for c in await store.listing(GUILD)] == [
        ("Sera Phina", 10, True)
    ]
    assert await store.names(GUILD, "PHI") == ["Sera Phina"]
    assert await store.get(GUILD, "nobody") is None


async def test_completion_takes_wildcards_literally(store: CharacterStore) -> None:
    await store.create(GUILD, 10, Profile("Half_Moon"), None)
    await store.create(GUILD, 10, Profile("Halfmoon 100%"), None)
    assert await store.names(GUILD, "_") == ["Half_Moon"]
    assert await store.names(GUILD, "0%") == ["Halfmoon 100%"]
    assert await store.names(GUILD, "HALF") == ["Half_Moon", "Halfmoon 100%"]
    assert await store.by_ids(GUILD, []) == []


async def test_names_are_unique_per_server_regardless_of_case(store: CharacterStore) -> None:
    await store.create(GUILD, 10, Profile("Åsa"), None)
    with pytest.raises(RoleplayError, match="already has a character called"):
        await store.create(GUILD, 11, Profile("ÅSA"), None)
    other = await store.create(GUILD, 10, Profile("Bo"), None)
    with pytest.raises(RoleplayError, match="already has a character called"):
        await store.update(other, Profile("åsa"), None)


async def test_the_limit_holds_even_for_creations_at_once(store: CharacterStore) -> None:
    results = await asyncio.gather(
        *(store.create(GUILD, 10, Profile(f"C{i}"), None) for i in range(5)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, RoleplayError)]
    assert len(refused) == 2 and "limit" in str(refused[0])
    assert len(await store.listing(GUILD)) == 3
    await store.create(OTHER, 10, Profile("C0"), None)  # another server has its own limit


async def test_update_keeps_the_link_only_with_the_same_avatar(store: CharacterStore) -> None:
    made = await store.create(GUILD, 10, Profile("Bo", "old"), b"one")
    link = AvatarLink(5, 6, "https://cdn/a.png")
    await store.set_link(made, link)
    made = await store.get(GUILD, "Bo")
    assert made is not None and made.link == link
    same = await store.update(made, Profile("Bo", "new"), b"one")
    assert same.link == link and (await store.get(GUILD, "Bo")) == same
    changed = await store.update(same, Profile("Bob", "new"), b"two")
    assert changed.link is None
    assert (await store.get(GUILD, "bob")) == changed and await store.get(GUILD, "Bo") is None


async def test_leaving_a_server_deletes_its_characters_only(store: CharacterStore) -> None:
    made = await store.create(GUILD, 10, Profile("Bo"), b"png")
    await store.create(GUILD, 10, Profile("Al"), None)
    await store.create(OTHER, 10, Profile("Bo"), None)
    await store.set_link(made, AvatarLink(5, 6, "https://cdn/a.png"))
    assert await store.delete_channel(5) == 0
    kept = await store.get(GUILD, "Bo")
    assert kept is not None and kept.link is None and kept.avatar == b"png"
    assert await store.delete_guild(GUILD) == 2
    assert await store.listing(GUILD) == []
    assert [c.name for c in await store.listing(OTHER)] == ["Bo"]


async def test_delete_one(store: CharacterStore) -> None:
    made = await store.create(GUILD, 10, Profile("Bo"), None)
    assert await store.delete(made)
    assert not await store.delete(made)
    with pytest.raises(RoleplayError, match="deleted meanwhile"):
        await store.update(made, Profile("Bo", "x"), None)


async def test_names_in_taken_and_deleted_messages_show_literally(store: CharacterStore) -> None:
    """A name's markdown would bold, strike or hide parts of the message (`**` closes
    the bold around it); it is escaped as in the cog's own messages."""
    made = await store.create(GUILD, 10, Profile("B*o*b_~~x~~"), None)
    with pytest.raises(RoleplayError) as taken:
        await store.create(GUILD, 11, Profile("B*o*b_~~x~~"), None)
    assert str(taken.value).endswith("called **B\\*o\\*b\\_\\~\\~x\\~\\~**.")
    assert await store.delete(made)
    with pytest.raises(RoleplayError) as gone:
        await store.update(made, Profile("Bo"), None)
    assert str(gone.value) == "**B\\*o\\*b\\_\\~\\~x\\~\\~** was deleted meanwhile."


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile("   "), "needs a name"),
        (Profile("\u200b \u2060"), "needs a name"),  # invisible: zero-width characters only
        (Profile("nArRaToR"), "scenes' narrator"),  # "Narrator:" lines are the bot's
        (Profile("Narrator\u200b"), "scenes' narrator"),
        (Profile("Dr\uff1a Who"), "colon"),  # a full-width colon is a colon too
        (Profile("x" * 65), r"^Keep the name to 64 characters at most\.$"),
        (Profile("Dr: Who"), "colon"),  # the script could not tell the name from its lines
        (Profile("Bo", first_message="x" * 20_001), "first message is longer"),
    ],
)
async def test_out_of_bounds_profiles_are_refused(
    store: CharacterStore, profile: Profile, message: str
) -> None:
    with pytest.raises(RoleplayError, match=message):
        await store.create(GUILD, 10, profile, None)
    assert await store.listing(GUILD) == []


async def test_names_compare_whatever_their_encoding_and_invisible_characters(
    store: CharacterStore,
) -> None:
    decomposed = unicodedata.normalize("NFD", "Zoë")  # as cards written on macOS hold it
    made = await store.create(GUILD, 10, Profile(decomposed), None)
    assert made.name == "Zoë" and len(made.name) == 3  # stored composed
    assert await store.get(GUILD, "ZOË") == made  # as typed
    assert await store.names(GUILD, "zoë") == ["Zoë"]
    with pytest.raises(RoleplayError, match="already has a character called"):
        await store.create(GUILD, 11, Profile("Zoë\u200b"), None)  # looks the same
    aria = await store.create(GUILD, 10, Profile("Aria\u2060"), None)
    assert await store.get(GUILD, "\u200baria") == aria
    assert [c.name for c in await store.listing(GUILD)] == ["Aria\u2060", "Zoë"]


async def test_a_name_keyed_by_an_older_version_is_still_found_and_taken(
    store: CharacterStore, db: Database
) -> None:
    """Older versions stored the key as the casefolded name, decomposed letters and
    zero-width characters kept: such rows are found and stay unique all the same."""
    for name in (unicodedata.normalize("NFD", "Zoë"), "Bo\u200b"):
        await db.execute(
            "INSERT INTO rp_characters (guild_id, name, name_key, description, creator_id, "
            "created_at, updated_at) VALUES (?, ?, ?, 'old', 10, 0, 0)",
            (GUILD, name, name.casefold()),
        )
    zoe = await store.get(GUILD, "Zoë")
    assert zoe is not None and zoe.profile.description == "old"
    assert await store.get(GUILD, "bo") is not None
    with pytest.raises(RoleplayError, match="already has a character called"):
        await store.create(GUILD, 11, Profile("ZOË"), None)
    with pytest.raises(RoleplayError, match="already has a character called"):
        await store.update(zoe, Profile("Bo"), None)
    await store.update(zoe, Profile("Zoë", "new"), None)  # itself is no other character
    assert (await store.get(GUILD, "zoë")).profile.description == "new"  # type: ignore[union-attr]


async def test_an_edit_of_a_character_changed_meanwhile_is_refused_not_lost(db: Database) -> None:
    """Two people editing at once: the second edit, made from what the first changed,
    would silently undo it."""
    ticks = iter(range(1, 100))
    store = CharacterStore(db, limit=3, clock=lambda: float(next(ticks)))
    made = await store.create(GUILD, 10, Profile("Bo", "a smith"), None)
    await store.update(made, Profile("Bo", "a smith", personality="calm"), None)
    with pytest.raises(RoleplayError, match=r"^\*\*Bo\*\* was changed meanwhile; please try"):
        await store.update(made, Profile("Bo", "a baker"), None)
    kept = await store.get(GUILD, "Bo")
    assert kept is not None and kept.profile == Profile("Bo", "a smith", personality="calm")
