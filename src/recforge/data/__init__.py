"""Data: readers (Parquet/CSV, any fsspec URL), sources (MovieLens, Criteo, tables, synthetic) and samples."""

from recforge.data.criteo import iter_criteo, load_criteo
from recforge.data.movielens import load_movielens
from recforge.data.raw import RawTables
from recforge.data.readers import count_rows, iter_batches, read_schema, read_table, write_parquet
from recforge.data.samples import SamplePaths, build_samples, join_and_label
from recforge.data.sources import SOURCES, load_source
from recforge.data.splits import assign_splits
from recforge.data.synthetic import generate_synthetic, oracle_auc, rank_auc

__all__ = [
    "SOURCES",
    "RawTables",
    "SamplePaths",
    "assign_splits",
    "build_samples",
    "count_rows",
    "generate_synthetic",
    "iter_batches",
    "iter_criteo",
    "join_and_label",
    "load_criteo",
    "load_movielens",
    "load_source",
    "oracle_auc",
    "rank_auc",
    "read_schema",
    "read_table",
    "write_parquet",
]
