"""One scope's FAISS index: exact and HNSW search, deletes, rebuilds, and its file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from utils.memory.index import CorruptIndexError, IndexParams, VectorIndex, remove_temp_files

ROOT = Path(__file__).resolve().parents[2]
META = {"scope": "guild:1", "model": "test-model"}
SMALL = IndexParams(flat_limit=200)


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(vectors @ query))[:k]].tolist()


def test_exact_search_replace_and_remove() -> None:
    vectors = unit_vectors(50)
    index = VectorIndex(SMALL)
    index.add(np.arange(1, 51), vectors)
    found, scores = index.search(vectors[3], 3)
    assert found[0] == 4 and scores[0] == pytest.approx(1.0, abs=1e-3)  # half precision
    index.add(np.array([4]), vectors[10:11])  # id 4 now holds id 11's vector
    assert index.search(vectors[3], 1)[0][0] != 4
    assert set(index.search(vectors[10], 2)[0].tolist()) == {4, 11}
    index.remove([11])
    assert 11 not in index.search(vectors[10], 10)[0]
    assert len(index) == 49 and sorted(index.ids().tolist()) == [i for i in range(1, 51) if i != 11]


def test_grows_into_hnsw_with_high_recall_and_keeps_deletes() -> None:
    vectors = unit_vectors(1000, seed=1)
    ids = np.arange(1000, 2000)
    index = VectorIndex(SMALL)
    index.add(ids, vectors)
    index.remove(range(1000, 1100))
    assert index.kind == "flat" and index.needs_rebuild()
    index.rebuilt()
    assert index.kind == "hnsw" and index.tombstones == 0 and len(index) == 900
    index.remove([1500])  # HNSW cannot delete: a tombstone, filtered from searches
    assert index.tombstones == 1
    live_ids = ids[(ids >= 1100) & (ids != 1500)]
    live = vectors[np.isin(ids, live_ids)]
    queries = unit_vectors(50, seed=2)
    recall = np.mean(
        [
            len(set(index.search(q, 10)[0].tolist()) & set(exact_top(live, live_ids, q, 10))) / 10
            for q in queries
        ]
    )
    assert recall >= 0.95
    assert 1500 not in index.search(vectors[500], 10)[0]


def test_dead_hnsw_vectors_never_come_back_and_are_compacted_past_their_share(
    tmp_path: Path,
) -> None:
    vectors = unit_vectors(400, seed=5)
    index = VectorIndex.build(np.arange(400), vectors, SMALL)
    assert index.kind == "hnsw"
    dead = set(range(0, 400, 7))
    index.remove(dead)
    path = tmp_path / "guild-1.faiss"
    index.save(path, META)
    loaded = VectorIndex.load(path, META, SMALL)
    for current in (index, loaded):
        for i in dead:  # each the nearest to its own query
            assert not set(current.search(vectors[i], 50)[0].tolist()) & dead
    assert not index.needs_rebuild()  # 58 of 400: under the share
    index.remove(range(1, 400, 7))
    assert index.needs_rebuild()
    index.rebuilt()
    assert index.tombstones == 0 and len(index) == 400 - 58 - 57


def test_changes_during_a_rebuild_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = unit_vectors(300, seed=3)
    index = VectorIndex(SMALL)
    index.add(np.arange(300), vectors)
    started, release = threading.Event(), threading.Event()
    real_build = VectorIndex.build

    def slow_build(*args: object) -> VectorIndex:
        started.set()
        release.wait(5)
        return real_build(*args)

    monkeypatch.setattr(VectorIndex, "build", slow_build)
    worker = threading.Thread(target=index.rebuilt)
    worker.start()
    assert started.wait(5)
    assert index.search(vectors[5], 1)[0][0] == 5, "searches go on during the build"
    index.remove([5])
    index.add(np.array([1000]), unit_vectors(1, seed=9))
    release.set()
    worker.join(5)
    assert index.kind == "hnsw"
    assert 5 not in index.ids() and 1000 in index.ids() and len(index) == 300


def test_searches_go_on_while_the_index_is_saved_and_changes_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = unit_vectors(300, seed=7)
    index = VectorIndex(SMALL)
    index.add(np.arange(300), vectors)
    path = tmp_path / "guild-1.faiss"
    writing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:  # a slow disk: the file is written, not yet synced
        writing.set()
        release.wait(5)
        real_fsync(fd)

    monkeypatch.setattr("utils.memory.index.os.fsync", slow_fsync)
    saver = threading.Thread(target=index.save, args=(path, META))
    saver.start()
    assert writing.wait(5)
    searched: list[int] = []
    searcher = threading.Thread(target=lambda: searched.extend(index.search(vectors[5], 1)[0]))
    searcher.start()
    searcher.join(2)
    assert searched == [5], "a search does not wait for the disk"
    index.remove([5])
    new = unit_vectors(1, seed=9)
    index.add(np.array([1000]), new)
    release.set()
    saver.join(5)
    monkeypatch.undo()
    assert 5 not in index.ids() and index.search(new[0], 1)[0].tolist() == [1000]
    assert index.dirty, "the file does not hold the changes made while it was written"
    assert sorted(VectorIndex.load(path, META).ids().tolist()) == list(range(300))
    index.save(path, META)
    saved = VectorIndex.load(path, META)
    assert 5 not in saved.ids() and 1000 in saved.ids() and len(saved) == 300


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_file_round_trip_gives_the_same_results(tmp_path: Path, kind: str) -> None:
    vectors = unit_vectors(400, seed=4)
    params = IndexParams(flat_limit=1000 if kind == "flat" else 100)
    index = VectorIndex.build(np.arange(400), vectors, params)
    index.remove([7, 8])
    path = tmp_path / "guild-1.faiss"
    index.save(path, META)
    assert not index.dirty
    loaded = VectorIndex.load(path, META, params)
    assert loaded.kind == kind and len(loaded) == 398
    for query in unit_vectors(20, seed=5):
        assert loaded.search(query, 10)[0].tolist() == index.search(query, 10)[0].tolist()


def test_bad_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "guild-1.faiss"
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(path, META)
    VectorIndex.build(np.arange(50), unit_vectors(50)).save(path, META)
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    for data in (b"", good[: len(good) // 2], bytes(flipped), b"x" * 200):
        path.write_bytes(data)
        with pytest.raises(CorruptIndexError):
            VectorIndex.load(path, META)
    path.write_bytes(good)
    for other in ({"scope": "guild:2", "model": "test-model"}, {**META, "model": "other"}):
        with pytest.raises(CorruptIndexError):
            VectorIndex.load(path, other)


def test_empty_index_removes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "guild-1.faiss"
    index = VectorIndex.build(np.arange(3), unit_vectors(3))
    index.save(path, META)
    index.remove([0, 1, 2])
    index.save(path, META)
    assert not path.exists()


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "guild-1.faiss"
    old = VectorIndex.build(np.arange(10), unit_vectors(10))
    old.save(path, META)
    bigger = VectorIndex.build(np.arange(100), unit_vectors(100, seed=6))

    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("utils.memory.index.os.fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(path, META)
    monkeypatch.undo()
    assert bigger.dirty, "what it holds is still unsaved"
    assert len(VectorIndex.load(path, META)) == 10
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left"


def test_a_forgotten_vector_is_not_in_the_saved_file(tmp_path: Path) -> None:
    """A flat index keeps a removed vector as dead until it is compacted; its file must
    not hold the vectors of what people told the bot to forget."""
    path = tmp_path / "guild-1.faiss"
    vectors = unit_vectors(3)
    index = VectorIndex.build(np.arange(3), vectors)
    index.remove([1])
    assert index.tombstones == 1  # in memory: dead, not yet compacted
    index.save(path, META)
    assert vectors[1].tobytes() not in path.read_bytes()
    loaded = VectorIndex.load(path, META)
    assert loaded.tombstones == 0 and sorted(loaded.ids().tolist()) == [0, 2]
    assert loaded.search(vectors[2], 1)[0].tolist() == [2]


CRASH = """
import os, signal, sys
import numpy as np
from pathlib import Path
from utils.memory.index import VectorIndex

path = Path(sys.argv[1])
vectors = np.random.default_rng(1).standard_normal((5000, 64)).astype(np.float32)
index = VectorIndex.build(np.arange(5000), vectors)
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die with the data half-saved
index.save(path, {"scope": "guild:1", "model": "test-model"})
"""


def test_crash_in_the_middle_of_a_save_leaves_a_loadable_index(tmp_path: Path) -> None:
    path = tmp_path / "guild-1.faiss"
    VectorIndex.build(np.arange(10), unit_vectors(10)).save(path, META)
    before = zlib.crc32(path.read_bytes())
    result = subprocess.run(
        [sys.executable, "-c", CRASH, str(path)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert result.returncode == -9, result.stderr.decode()
    assert zlib.crc32(path.read_bytes()) == before
    assert len(VectorIndex.load(path, META)) == 10
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert leftovers, "the crash left its temporary file behind"
    assert remove_temp_files(tmp_path) == len(leftovers)
    assert list(tmp_path.iterdir()) == [path]
