"""Embedding tables behind one interface; models never see how rows are stored."""

from recforge.embedding.collection import EmbeddingCollection, pool_bag
from recforge.embedding.dynamic import DynamicTable, dynamic_tables, evict_all
from recforge.embedding.multi_hash import MultiHashTable
from recforge.embedding.tables import TABLES, build_table

__all__ = [
    "TABLES",
    "DynamicTable",
    "EmbeddingCollection",
    "MultiHashTable",
    "build_table",
    "dynamic_tables",
    "evict_all",
    "pool_bag",
]
