"""The memories' vectors as the database holds them (`MemoryStore.vectors`): read to
build a scope's FAISS index, written when memories are embedded again. Each is a float32
blob with the name of the model that made it, so an index can be rebuilt without
re-embedding and a model change is spotted row by row. The rows are the store's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np

from utils.db import Connection, Database, Row, in_batches
from utils.memory.records import Scope


def blob(vector: np.ndarray) -> bytes:
    """A vector as the `vector` column holds it."""
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _columns(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) from rows of (id, vector blob)."""
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
    return ids, vectors.reshape(len(rows), -1)


class MemoryVectors:
    """Reads and rewrites the `model` and `vector` columns of memories."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ids(self, scope: Scope, model: str) -> np.ndarray:
        """Ids of a scope's memories whose vectors come from `model`."""
        rows = await self.db.fetchall(
            "SELECT id FROM memories WHERE scope = ? AND model = ?", (scope.key, model)
        )
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    async def read(
        self, scope: Scope, model: str, ids: Sequence[int] | None = None, *, batch: int = 5000
    ) -> AsyncIterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of a scope's memories made by `model`, all or these, in batches."""
        if ids is not None:
            for chunk in in_batches(ids):
                part = [int(i) for i in chunk]
                marks = ",".join("?" * len(part))
                rows = await self.db.fetchall(
                    f"SELECT id, vector FROM memories WHERE scope = ? AND model = ? "
                    f"AND id IN ({marks})",
                    (scope.key, model, *part),
                )
                if rows:
                    yield _columns(rows)
            return
        after = 0
        while True:
            rows = await self.db.fetchall(
                "SELECT id, vector FROM memories WHERE scope = ? AND model = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (scope.key, model, after, batch),
            )
            if not rows:
                return
            after = rows[-1][0]
            yield _columns(rows)

    async def replace(self, ids: Sequence[int], model: str, vectors: np.ndarray) -> set[int]:
        """Store new vectors; the ids of those still stored (not deleted meanwhile)."""

        async def write(conn: Connection) -> set[int]:
            kept: set[int] = set()
            for memory_id, vector in zip(ids, vectors, strict=True):
                if await conn.execute(
                    "UPDATE memories SET model = ?, vector = ? WHERE id = ?",
                    (model, blob(vector), memory_id),
                ):
                    kept.add(memory_id)
            return kept

        return await self.db.in_transaction(write)
