"""One scope's vector index (FAISS) and its file format.

Up to `flat_limit` vectors a search compares every vector (flat: half-precision floats
in an `IndexScalarQuantizer`, or `IndexFlatIP` in files saved before); past it, HNSW
(approximate: ~0.2 ms per search and recall@10 ≈ 0.99 on real embeddings, see
docs/BENCHMARKS.md). Vectors sit at positions 0..n-1 in FAISS and `_ids` maps a
position to its memory id. FAISS HNSW cannot delete, so a removed or replaced vector
becomes a tombstone that every search filters out; `rebuilt()` compacts them away
and switches between flat and HNSW as the size requires.

A file is the FAISS index, the id and tombstone arrays (int64), then a trailer: JSON
metadata (format, scope, model, sizes, CRC-32), its length and a magic. It is written
to a temporary file and renamed over the old one, so a crash mid-save leaves the old
file; a torn or foreign file fails the checks and the caller rebuilds from the database.

Everything here blocks and is thread-safe; async code calls it through a thread.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import faiss
import numpy as np

from utils.files import atomic_file

FORMAT = 1
MAGIC = b"GBMEMIX1"
_TRAILER = struct.Struct("<I8s")  # JSON length, magic
_READ_CHUNK = 1 << 20

Kind = Literal["empty", "flat", "hnsw"]
Journal = list[tuple[Literal["add", "remove"], np.ndarray, np.ndarray | None]]


class CorruptIndexError(Exception):
    """An index file that can't be trusted: torn, foreign, or made for other vectors."""


@dataclass(frozen=True)
class IndexParams:
    flat_limit: int = 20_000  # exact search up to here: ~1.4 ms at 20k x 384 on one core
    hnsw_m: int = 32
    ef_construction: int = 80
    # HNSW recall falls as the graph grows, so the search list grows with it: 128 up to
    # 250k vectors, 512 at 1M (recall@10 0.986 there, p50 1.5 ms; docs/BENCHMARKS.md).
    ef_search: int = 128
    ef_search_step: int = 250_000
    max_tombstone_share: float = 0.2  # compact when this share of entries is dead


class VectorIndex:
    """Unit vectors keyed by memory id; inner-product (cosine) search."""

    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()
        self.dirty = False
        self._index: faiss.Index | None = None
        self._ids = np.empty(0, dtype=np.int64)  # by position; capacity grows by doubling
        self._count = 0
        self._tombstones: set[int] = set()  # positions
        self._search_params: faiss.SearchParameters | None = None
        self._journal: Journal | None = None  # changes to replay on a rebuilt index
        self._held: Journal | None = None  # changes waiting while a save reads the index
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()

    # Facts

    def __len__(self) -> int:
        return self._count - len(self._tombstones)

    @property
    def kind(self) -> Kind:
        if self._index is None:
            return "empty"
        return "hnsw" if isinstance(self._index, faiss.IndexHNSW) else "flat"

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    def needs_rebuild(self) -> bool:
        """Flat but too big for exact search, or too many tombstones."""
        with self._lock:
            if self.kind == "flat" and len(self) > self.params.flat_limit:
                return True
            return len(self._tombstones) > self.params.max_tombstone_share * max(self._count, 1)

    def ids(self) -> np.ndarray:
        """Ids of the live vectors."""
        with self._lock:
            return self._ids[self._live_positions()].copy()

    # Changes

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an id already present is replaced."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not len(ids):
            return
        with self._lock:
            if self._held is not None:  # the index is being saved: change it after
                self._held.append(("add", ids.copy(), vectors.copy()))
                return
            self._remove(ids)
            if self._index is None:
                self._index = self._new_index(vectors.shape[1], hnsw=False)
            self._index.add(vectors)
            self._append_ids(ids)
            self._log("add", ids, vectors)
            self.dirty = True

    def remove(self, ids: Iterable[int]) -> None:
        ids = np.fromiter(ids, dtype=np.int64)
        with self._lock:
            if self._held is not None:
                self._held.append(("remove", ids, None))
            elif self._remove(ids):
                self._log("remove", ids, None)
                self.dirty = True

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids and similarities of the `k` nearest live vectors, best first."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            k = min(k, len(self))
            if self._index is None or k <= 0:
                return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
            scores, positions = self._index.search(query, k, params=self._params(k))
            found = positions[0] >= 0
            return self._ids[positions[0][found]], scores[0][found]

    def rebuilt(self) -> None:
        """Compact tombstones and pick flat or HNSW for the size, without blocking
        searches meanwhile: changes made during the build are replayed on the result."""
        with self._lock:
            positions = self._live_positions()
            ids = self._ids[positions].copy()
            vectors = self._vectors(positions)
            self._journal = []
        try:
            fresh = VectorIndex.build(ids, vectors, self.params)
            with self._lock:
                _replay(self._journal, fresh)
                self._index, self._ids, self._count = fresh._index, fresh._ids, fresh._count
                self._tombstones, self._search_params = fresh._tombstones, None
                self.dirty = True
        finally:
            with self._lock:
                self._journal = None

    @classmethod
    def build(
        cls, ids: np.ndarray, vectors: np.ndarray, params: IndexParams | None = None
    ) -> VectorIndex:
        """A fresh index of the right kind for this many vectors."""
        index = cls(params)
        if len(ids):
            hnsw = len(ids) > index.params.flat_limit
            index._index = index._new_index(vectors.shape[1], hnsw=hnsw)
            index._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            index._append_ids(np.asarray(ids, dtype=np.int64))
        index.dirty = True
        return index

    # Files

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write atomically (temp file, fsync, rename); an empty index removes the file.

        Searches go on while the file is written (a few hundred ms at 100k vectors,
        more on a slow disk); changes made meanwhile wait and are applied after it."""
        with self._save_lock:  # one save at a time: an older state never lands last
            with self._lock:
                if self._index is None or not len(self):
                    path.unlink(missing_ok=True)
                    self.dirty = False
                    return
                index, ids = self._index, self._ids[: self._count]
                tombstones = np.fromiter(sorted(self._tombstones), dtype=np.int64)
                if len(tombstones) and self.kind == "flat":
                    # What was forgotten leaves the file too: a flat index is copied
                    # without its dead vectors (HNSW ones go when it is rebuilt).
                    live = self._live_positions()
                    compact = VectorIndex.build(self._ids[live], self._vectors(live), self.params)
                    ids, tombstones = compact._ids[: compact._count], np.empty(0, np.int64)
                    index = compact._index or index
                self._held, self.dirty = [], False
            try:
                with atomic_file(path) as handle:
                    _write(handle, index, ids, tombstones, meta)
            except BaseException:
                self.dirty = True  # what changed is still unsaved
                raise
            finally:
                with self._lock:
                    held, self._held = self._held, None
                    _replay(held, self)

    @classmethod
    def load(
        cls, path: Path, expect: dict[str, Any], params: IndexParams | None = None
    ) -> VectorIndex:
        """Read a file written by `save`. FileNotFoundError if there is none;
        CorruptIndexError unless every check passes and its metadata has the
        `expect`ed values (scope, model)."""
        try:
            with path.open("rb") as handle:
                meta, payload = _read_trailer(handle)
                for key, value in {"format": FORMAT, **expect}.items():
                    if meta.get(key) != value:
                        raise CorruptIndexError(f"{key} is {meta.get(key)!r}, not {value!r}")
                count, dead = int(meta["count"]), int(meta["tombstones"])
                if payload != int(meta["faiss_bytes"]) + 8 * (count + dead):
                    raise CorruptIndexError("sizes do not add up")
                if _crc(handle, payload) != meta["crc32"]:
                    raise CorruptIndexError("checksum mismatch")
                handle.seek(0)
                read = handle.read  # the reader does not keep its callback alive: we do
                reader = faiss.PyCallbackIOReader(read)  # pyright: ignore[reportAttributeAccessIssue]
                faiss_index = faiss.read_index(reader)
                handle.seek(int(meta["faiss_bytes"]))
                ids = np.frombuffer(handle.read(8 * count), dtype=np.int64).copy()
                tombstones = np.frombuffer(handle.read(8 * dead), dtype=np.int64)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            raise CorruptIndexError(f"{path.name}: {error}") from error
        if faiss_index.ntotal != count:
            raise CorruptIndexError(f"{path.name}: {faiss_index.ntotal} vectors for {count} ids")
        index = cls(params)
        index._index = faiss_index
        index._ids, index._count = ids, count
        index._tombstones = set(tombstones.tolist())
        return index

    # Internals

    def _new_index(self, dim: int, *, hnsw: bool) -> faiss.Index:
        if not hnsw:
            # Half-precision vectors: half the bytes a search reads (0.26 ms against 0.49
            # at 3,000 vectors, cache cold), the same neighbours (unit vectors lose ~1e-3).
            return faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
        index = faiss.IndexHNSWFlat(dim, self.params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.params.ef_construction
        return index

    def _append_ids(self, ids: np.ndarray) -> None:
        needed = self._count + len(ids)
        if needed > len(self._ids):
            grown = np.empty(max(needed, 2 * len(self._ids), 64), dtype=np.int64)
            grown[: self._count] = self._ids[: self._count]
            self._ids = grown
        self._ids[self._count : needed] = ids
        self._count = needed

    def _remove(self, ids: np.ndarray) -> bool:
        """Tombstone every live position holding one of `ids`; True if any was."""
        if not self._count or not len(ids):
            return False
        positions = np.flatnonzero(np.isin(self._ids[: self._count], ids))
        fresh = set(positions.tolist()) - self._tombstones
        if fresh:
            self._tombstones |= fresh
            self._search_params = None
        return bool(fresh)

    def _live_positions(self) -> np.ndarray:
        alive = np.ones(self._count, dtype=bool)
        if self._tombstones:
            alive[np.fromiter(self._tombstones, dtype=np.int64)] = False
        return np.flatnonzero(alive)

    def _vectors(self, positions: np.ndarray) -> np.ndarray:
        if self._index is None or not len(positions):
            return np.empty((0, 0), dtype=np.float32)
        return self._index.reconstruct_n(0, self._count)[positions]

    def _params(self, k: int) -> faiss.SearchParameters | None:
        hnsw = self.kind == "hnsw"
        if not hnsw and not self._tombstones:
            return None
        if self._search_params is None:
            params = (
                faiss.SearchParametersHNSW()  # pyright: ignore[reportAttributeAccessIssue]
                if hnsw
                else faiss.SearchParameters()
            )
            if self._tombstones:
                dead = np.fromiter(self._tombstones, dtype=np.int64)
                params.sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
            self._search_params = params
        if hnsw:
            steps = max(1, math.ceil(self._count / self.params.ef_search_step))
            ef_search = max(self.params.ef_search * steps, k)
            self._search_params.efSearch = ef_search  # pyright: ignore[reportAttributeAccessIssue]
        return self._search_params

    def _log(
        self, op: Literal["add", "remove"], ids: np.ndarray, vectors: np.ndarray | None
    ) -> None:
        if self._journal is not None:
            self._journal.append((op, ids.copy(), None if vectors is None else vectors.copy()))


def _write(
    handle: BinaryIO,
    index: faiss.Index,
    ids: np.ndarray,
    tombstones: np.ndarray,
    meta: dict[str, Any],
) -> None:
    """The file `load` reads: FAISS's bytes, the ids, the tombstones, then the trailer."""
    crc = 0

    def write(chunk: bytes) -> int:
        nonlocal crc
        crc = zlib.crc32(chunk, crc)
        return handle.write(chunk)

    # faiss's bundled stubs (here and below) lack the callback IO and HNSW search classes.
    writer = faiss.PyCallbackIOWriter(write)  # pyright: ignore[reportAttributeAccessIssue]
    faiss.write_index(index, writer)
    faiss_bytes = handle.tell()
    write(ids.tobytes())
    write(tombstones.tobytes())
    trailer = {
        **meta,
        "format": FORMAT,
        "faiss_bytes": faiss_bytes,
        "count": len(ids),
        "tombstones": len(tombstones),
        "crc32": crc,
    }
    data = json.dumps(trailer).encode()
    handle.write(data + _TRAILER.pack(len(data), MAGIC))


def _replay(journal: Journal, index: VectorIndex) -> None:
    for op, ids, vectors in journal:
        if op == "add":
            assert vectors is not None  # an "add" always has them
            index.add(ids, vectors)
        else:
            index.remove(ids)


def _read_trailer(handle: BinaryIO) -> tuple[dict[str, Any], int]:
    """The trailer's metadata and the number of bytes before it."""
    end = handle.seek(0, os.SEEK_END)
    if end < _TRAILER.size:
        raise CorruptIndexError("too short")
    handle.seek(end - _TRAILER.size)
    length, magic = _TRAILER.unpack(handle.read(_TRAILER.size))
    if magic != MAGIC or length > end - _TRAILER.size:
        raise CorruptIndexError("no trailer")
    payload = end - _TRAILER.size - length
    handle.seek(payload)
    meta = json.loads(handle.read(length))
    if not isinstance(meta, dict):
        raise CorruptIndexError("bad trailer")
    return meta, payload


def _crc(handle: BinaryIO, size: int) -> int:
    handle.seek(0)
    crc = 0
    while size > 0:
        chunk = handle.read(min(_READ_CHUNK, size))
        if not chunk:
            raise CorruptIndexError("truncated")
        crc = zlib.crc32(chunk, crc)
        size -= len(chunk)
    return crc


def remove_temp_files(directory: Path) -> int:
    """Delete the temporary files a crash left mid-save; returns how many."""
    removed = 0
    for path in directory.glob(".*.faiss.*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
