"""What a member may read (`utils.checks.readable`) in a server of many roles: the
audience of an answer is asked per kind of role, and must answer as asking each role
alone would."""

from __future__ import annotations

import random
from typing import Any

import discord

from utils.checks import readable

GUILD = 1_000
OWNER = 7  # the guild's owner reads everything: only the audience decides for them
GUEST = 8  # a member with no role, let in by overwrites of their own
VIEW = discord.Permissions(view_channel=True).value
HISTORY = discord.Permissions(read_message_history=True).value
ADMIN = discord.Permissions(administrator=True).value
OTHER = discord.Permissions(manage_messages=True, embed_links=True).value


def make_guild(roles: list[int], channels: list[list[tuple[int, int, int, int]]]) -> discord.Guild:
    """A guild with @everyone (no server permissions), `roles` (their server
    permissions; ids GUILD + 1...), text channels (ids 2 * GUILD + n) with overwrites
    (target, type 0 role / 1 member, allow, deny), the owner, who holds every role, and
    a guest, who holds none."""
    client = discord.Client(intents=discord.Intents(guilds=True, members=True))
    role_ids = [GUILD + 1 + n for n in range(len(roles))]
    data: dict[str, Any] = {
        "id": GUILD,
        "name": "big",
        "owner_id": OWNER,
        "roles": [{"id": GUILD, "name": "@everyone", "permissions": "0", "position": 0}]
        + [
            {"id": role_id, "name": f"r{n}", "permissions": str(perms), "position": n + 1}
            for n, (role_id, perms) in enumerate(zip(role_ids, roles, strict=True))
        ],
        "channels": [
            {
                "id": 2 * GUILD + n,
                "type": 0,
                "name": f"c{n}",
                "position": n,
                "permission_overwrites": [
                    {"id": target, "type": kind, "allow": str(allow), "deny": str(deny)}
                    for target, kind, allow, deny in overwrites
                ],
            }
            for n, overwrites in enumerate(channels)
        ],
        "members": [
            {
                "user": {
                    "id": user_id,
                    "username": f"u{user_id}",
                    "discriminator": "0",
                    "avatar": None,
                },
                "roles": [str(role_id) for role_id in held],
                "flags": 0,
                "joined_at": "2024-01-01T00:00:00+00:00",
            }
            for user_id, held in ((OWNER, role_ids), (GUEST, []))
        ],
        "member_count": 2,
    }
    state = client._connection  # pyright: ignore[reportPrivateUsage]
    return state._add_guild_from_data(data)  # pyright: ignore[reportPrivateUsage, reportArgumentType]


def everyone_reads(guild: discord.Guild, here: int, there: int) -> bool:
    """The rule asked of every role alone: whoever reads `here` (each role with
    @everyone, and each member let in by an overwrite) reads `there`'s history."""

    def reads(channel: discord.abc.GuildChannel, who: discord.Role | discord.Member) -> bool:
        permissions = channel.permissions_for(who)
        return permissions.read_messages and permissions.read_message_history

    place, other = guild.get_channel(here), guild.get_channel(there)
    assert place is not None and other is not None
    members = [
        t for t, o in place.overwrites.items() if o.read_messages and isinstance(t, discord.Member)
    ]
    readers = [role for role in guild.roles if reads(place, role)] + members
    return all(reads(other, reader) for reader in readers)


def recallable(guild: discord.Guild, here: int, there: int) -> bool:
    owner = guild.get_member(OWNER)
    assert owner is not None
    check = readable(owner, here)
    assert check is not None
    return check(there)


def test_roles_that_read_only_where_let_in_are_not_taken_for_those_that_read_everywhere() -> None:
    # Each pair of roles differs in one permission that bears on reading (and the first
    # of each pair has others that do not): let into #here alike, they read #there apart.
    for reads_everywhere, reads_where_let_in in (
        (VIEW | HISTORY | OTHER, HISTORY),
        (VIEW | HISTORY | OTHER, VIEW),
        (ADMIN, OTHER),
    ):
        pair = [reads_everywhere, reads_where_let_in]
        allow = VIEW | HISTORY
        let_in = [(GUILD + 1, 0, allow, 0), (GUILD + 2, 0, allow, 0)]
        guild = make_guild(pair, [let_in, []])
        assert not recallable(guild, 2 * GUILD, 2 * GUILD + 1)
        assert recallable(guild, 2 * GUILD, 2 * GUILD)
        # Both read #there once it lets the second in too.
        guild = make_guild(pair, [let_in, [(GUILD + 2, 0, allow, 0)]])
        assert recallable(guild, 2 * GUILD, 2 * GUILD + 1)


def test_roles_of_one_kind_are_told_apart_by_an_overwrite_of_their_own() -> None:
    # Three roles alike, in a server where @everyone reads nothing; #there lets the first
    # two in by overwrites of their own, so whether the third reads there decides.
    alike = [VIEW | HISTORY] * 3
    hidden = [(GUILD, 0, 0, VIEW)]
    allow = VIEW | HISTORY
    guild = make_guild(alike, [[], [*hidden, (GUILD + 1, 0, allow, 0), (GUILD + 2, 0, allow, 0)]])
    assert not recallable(guild, 2 * GUILD, 2 * GUILD + 1)
    guild = make_guild(alike, [[], [*hidden, *[(GUILD + n, 0, allow, 0) for n in (1, 2, 3)]]])
    assert recallable(guild, 2 * GUILD, 2 * GUILD + 1)


def test_a_server_of_many_roles_and_overwrites_answers_as_each_role_asked_alone() -> None:
    rnd = random.Random(5)
    bits = [0, VIEW, HISTORY, VIEW | HISTORY, VIEW | HISTORY | OTHER, OTHER, ADMIN]
    for _ in range(8):
        roles = [rnd.choice(bits) for _ in range(30)]
        channels = []
        for _ in range(12):
            overwrites = []
            if rnd.random() < 0.5:
                overwrites.append((GUILD, 0, rnd.choice([0, VIEW]), rnd.choice([0, VIEW, HISTORY])))
            for role in rnd.sample(range(GUILD + 1, GUILD + 31), rnd.randint(0, 6)):
                overwrites.append((role, 0, rnd.choice(bits[:4]), rnd.choice(bits[:4])))
            if rnd.random() < 0.2:
                overwrites.append((GUEST, 1, rnd.choice([VIEW, VIEW | HISTORY]), 0))
            channels.append(overwrites)
        guild = make_guild(roles, channels)
        owner = guild.get_member(OWNER)
        assert owner is not None
        for here in range(2 * GUILD, 2 * GUILD + 12):
            check = readable(owner, here)  # one a reply, asked of every channel in turn
            assert check is not None
            for there in range(2 * GUILD, 2 * GUILD + 12):
                expected = here == there or everyone_reads(guild, here, there)
                assert check(there) == expected, (here, there)
