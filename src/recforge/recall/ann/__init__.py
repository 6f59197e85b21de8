"""Approximate nearest-neighbor recall over item embeddings (Faiss): flat, HNSW and IVF indexes."""

from recforge.config.ann import IndexConfig
from recforge.recall.ann.index import VectorIndex, faiss_threads
from recforge.recall.ann.kinds import INDEX_KINDS, IndexKind

__all__ = ["INDEX_KINDS", "IndexConfig", "IndexKind", "VectorIndex", "faiss_threads"]
