"""Who holds the data of a channel or a guild, so that deleting it reaches every copy.

Each feature's live owner of channel and guild data (a store with its cache, a
service with its indexes, a player with its saved queue) registers here; deleting a
channel's or a guild's data asks every one of them, so no cached copy outlives the
rows and nobody deletes another feature's tables. The Bot owns the registry and
registers its own services; cogs register theirs in `cog_load` and unregister in
`cog_unload`.

Each owner also says where it holds data (`places`), so that a guild left or a
channel deleted while the bot was offline is found at the next start
(`cogs.admin.absent`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Place = tuple[int, int | None]
"""Where an owner holds data: (guild id, channel or thread id), or (guild id, None) for
data of the whole guild. Data of DMs has no place: nothing deletes it."""


class DataOwner(Protocol):
    """Deletes what it holds of a channel or a guild; returns how many items went."""

    async def delete_channel(self, channel_id: int) -> int: ...

    async def delete_guild(self, guild_id: int) -> int: ...

    async def places(self) -> set[Place]: ...


class DataOwners:
    """The registered owners, by name."""

    def __init__(self) -> None:
        self._owners: dict[str, DataOwner] = {}

    def register(self, name: str, owner: DataOwner) -> None:
        """Ask ``owner`` too from now on. Raises ValueError if ``name`` is taken."""
        if name in self._owners:
            raise ValueError(f"data owner {name!r} is already registered")
        self._owners[name] = owner

    def unregister(self, name: str) -> None:
        """Stop asking the owner called ``name``; unknown names are ignored."""
        self._owners.pop(name, None)

    async def delete_channel(self, channel_id: int) -> dict[str, int]:
        """Delete a channel's data everywhere; returns owner name -> items deleted."""
        return await self._ask_all(lambda owner: owner.delete_channel(channel_id))

    async def delete_guild(self, guild_id: int) -> dict[str, int]:
        """Delete a guild's data everywhere; returns owner name -> items deleted."""
        return await self._ask_all(lambda owner: owner.delete_guild(guild_id))

    async def _ask_all(self, delete: Callable[[DataOwner], Awaitable[int]]) -> dict[str, int]:
        """Ask every owner, even after one failed (its feature's data then waits for the
        next try, not the others'); the failures are raised together at the end."""
        deleted: dict[str, int] = {}
        errors: list[Exception] = []
        for name, owner in list(self._owners.items()):
            try:
                deleted[name] = await delete(owner)
            except Exception as error:  # any feature's: raised below, with the others
                errors.append(error)
        if errors:
            raise ExceptionGroup("deleting data failed", errors)
        return deleted

    async def places(self) -> set[Place]:
        """Every place some owner holds data of."""
        found: set[Place] = set()
        for owner in list(self._owners.values()):
            found |= await owner.places()
        return found
