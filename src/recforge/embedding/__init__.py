"""Embedding tables behind one interface; models never see how rows are stored."""

from recforge.embedding import dynamic_kind  # noqa: F401  (registers the dynamic storage kind)
from recforge.embedding.collection import EmbeddingCollection, pool_bag
from recforge.embedding.dynamic.table import DynamicTable, dynamic_tables, evict_all
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
