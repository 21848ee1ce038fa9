"""The memory service's settings: what `MemoryService` is built with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from utils.memory.chunks import ChunkLimits
from utils.memory.index import IndexParams
from utils.memory.recall import RecallLimits
from utils.memory.scoring import Weights

if TYPE_CHECKING:
    from config import Settings


@dataclass(frozen=True)
class MemoryConfig:
    top_k: int = 40  # at most; the token budget usually decides first
    context_tokens: int = 1200
    chunk: ChunkLimits = field(default_factory=ChunkLimits)
    consolidation_interval: float = 1800.0  # seconds; 0 turns it off
    min_similarity: float = 0.3
    dedupe_similarity: float = 0.9
    candidates: int = 80  # nearest neighbours re-ranked per query
    weights: Weights = field(default_factory=Weights)
    index: IndexParams = field(default_factory=IndexParams)
    max_loaded_scopes: int = 256
    max_loaded_vectors: int = 1_000_000
    save_interval: float = 60.0
    queue_size: int = 10_000
    index_delay: float = 20.0  # seconds an exchange waits to be indexed with the next ones
    recall_timeout: float = 10.0
    model_wait: float = 1.5  # seconds recall waits for a model still loading

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryConfig:
        return cls(
            top_k=settings.memory_top_k,
            context_tokens=settings.memory_context_tokens,
            chunk=ChunkLimits(max_turns=settings.memory_chunk_turns),
            consolidation_interval=settings.memory_consolidation_minutes * 60,
            model_wait=settings.memory_model_wait,
        )

    @property
    def recall_limits(self) -> RecallLimits:
        return RecallLimits(
            top_k=self.top_k,
            context_tokens=self.context_tokens,
            min_similarity=self.min_similarity,
            candidates=self.candidates,
            weights=self.weights,
            timeout=self.recall_timeout,
        )
