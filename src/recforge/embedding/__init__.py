"""Embedding tables behind one interface; models never see how rows are stored."""

from recforge.embedding.collection import EmbeddingCollection, pool_bag
from recforge.embedding.tables import TABLES, build_table

__all__ = ["TABLES", "EmbeddingCollection", "build_table", "pool_bag"]
