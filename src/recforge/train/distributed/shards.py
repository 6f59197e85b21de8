"""Each training process's share of a Parquet sample file (or directory of files), read by row group.

Rank r of W owns the rows [r * N // W, (r + 1) * N // W) of the file's N rows in file order, so the
shares differ by at most one row and every rank takes the same number of steps. Only the row groups
that overlap a rank's range are read (from the Parquet footer's row counts); a group on a boundary is
read by both neighbours, each keeping its own slice, so a rank reads its share plus at most two groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recforge.errors import DataError


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of one row group of one file."""

    file: str
    row_group: int
    start: int
    stop: int


@dataclass(frozen=True)
class Shard:
    """One rank's rows of a sample file: the row range and the row-group pieces that hold it."""

    rank: int
    world_size: int
    first_row: int
    rows: int
    total_rows: int
    pieces: tuple[Piece, ...]

    @property
    def min_rows(self) -> int:
        """Rows of the smallest share (every rank knows it from the footers alone, without talking)."""
        return self.total_rows // self.world_size


def parquet_files(path: str) -> list[str]:
    """The Parquet files of a sample path: the file itself, or a directory's `*.parquet` files in name order."""
    where = Path(path)
    if where.is_dir():
        files = sorted(str(f) for f in where.rglob("*.parquet"))
        if not files:
            raise DataError(f"{path}: no .parquet files in this directory\n  fix: point at the samples' Parquet")
        return files
    if not where.exists():
        raise DataError(f"{path}: file not found\n  fix: check the samples path")
    return [path]


def plan_shard(path: str, rank: int, world_size: int) -> Shard:
    """Rank `rank`'s share of the Parquet rows under `path` (see the module docstring)."""
    groups: list[tuple[str, int, int]] = []  # (file, row group, rows)
    for file in parquet_files(path):
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"{file}: not a Parquet file ({exc})\n  fix: several training processes read Parquet samples only"
            ) from None
        groups += [(file, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    total = sum(rows for *_, rows in groups)
    first, last = rank * total // world_size, (rank + 1) * total // world_size
    pieces, offset = [], 0
    for file, group, rows in groups:
        start, stop = max(first - offset, 0), min(last - offset, rows)
        if start < stop:
            pieces.append(Piece(file, group, start, stop))
        offset += rows
    return Shard(rank, world_size, first, last - first, total, tuple(pieces))


def iter_shard(shard: Shard, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The shard's rows in file order as record batches of at most `batch_rows` rows (`columns` only)."""
    files: dict[str, pq.ParquetFile] = {}
    for piece in shard.pieces:
        parquet = files.setdefault(piece.file, pq.ParquetFile(piece.file))
        missing = sorted(set(columns) - set(parquet.schema_arrow.names))
        if missing:
            raise DataError(f"{piece.file}: no column(s) {missing}\n  fix: rebuild the samples for this config")
        table = parquet.read_row_group(piece.row_group, columns=columns).slice(piece.start, piece.stop - piece.start)
        yield from table.to_batches(max_chunksize=batch_rows)
