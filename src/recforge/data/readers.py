"""Stream Parquet and delimited text (CSV/TSV) from local paths or any fsspec URL as Arrow record batches.

Everything is read in batches, so a file larger than RAM can be fed to feature fitting and training.
Every failure is a DataError that names the path and says how to fix it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, NoReturn

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from recforge.errors import DataError

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
DELIMITED_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None, ".dat": None, ".data": None}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
SNIFF_CANDIDATES = ("\t", ",", "|", ";")
CSV_BLOCK_BYTES = 8 << 20  # type inference looks at the first block, so keep it generous
KNOWN_FORMATS = ".parquet, .pq, .csv, .tsv, .txt (optionally .gz/.bz2/.zst), or a directory of Parquet files"


def data_error(path: str, problem: str, fix: str = "") -> DataError:
    """A DataError in the house format: `path: problem` plus an indented fix line."""
    return DataError(f"{path}: {problem}" + (f"\n  fix: {fix}" if fix else ""))


@dataclass(frozen=True)
class CsvOptions:
    """How to parse one delimited text file; the defaults read a headed, quoted, comma-separated file."""

    delimiter: str = ","
    column_names: list[str] | None = None  # None: the first line is the header
    column_types: dict[str, pa.DataType] | None = None
    encoding: str = "utf8"
    quoting: bool = True
    null_values: list[str] | None = None  # None: pyarrow's defaults ("", "NA", "null", ...)
    strings_can_be_null: bool = False
    skip_rows: int = 0  # lines skipped before the header (or the data, with column_names)
    on_bad_line: Callable[[Any], str] | None = None  # pyarrow's invalid_row_handler: returns "skip" or "error"


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, inner path) for a local path or fsspec URL; local files use Arrow's native fs."""
    fs, inner = fsspec.core.url_to_fs(str(path))
    if isinstance(fs, LocalFileSystem):
        return pafs.LocalFileSystem(), inner
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), inner


def _info(fs: pafs.FileSystem, inner: str, path: str) -> pafs.FileInfo:
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise data_error(path, "file not found", "check the path (relative paths resolve against the working dir)")
    return info


def _suffixes(inner: str) -> tuple[str, str | None]:
    """(format suffix, compression codec) of a file name, e.g. 'a.csv.gz' -> ('.csv', 'gzip')."""
    name = PurePosixPath(inner)
    suffix = name.suffix.lower()
    if suffix in COMPRESSION_SUFFIXES:
        return PurePosixPath(name.stem).suffix.lower(), COMPRESSION_SUFFIXES[suffix]
    return suffix, None


def _format(fs: pafs.FileSystem, inner: str, path: str) -> str:
    """'parquet', 'parquet-dir' or 'csv'; files with unknown suffixes are accepted only with Parquet magic."""
    info = _info(fs, inner, path)
    if info.type == pafs.FileType.Directory:
        return "parquet-dir"
    suffix, _ = _suffixes(inner)
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in DELIMITED_SUFFIXES:
        return "csv"
    with fs.open_input_file(inner) as handle:
        if handle.size() >= 4 and handle.read(4) == b"PAR1":
            return "parquet"
    raise data_error(path, f"unknown file format {suffix or '(no suffix)'!r}", f"use {KNOWN_FORMATS}")


def _sniff_delimiter(fs: pafs.FileSystem, inner: str, codec: str | None) -> str:
    """The candidate delimiter that occurs most often on the first line (comma when none does)."""
    with fs.open_input_stream(inner, compression=codec) as stream:
        head = stream.read(1 << 16).decode("utf8", errors="replace").splitlines()
    first = head[0] if head else ""
    counts = {d: first.count(d) for d in SNIFF_CANDIDATES}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_options_for(path: str) -> CsvOptions:
    """Options for a headed delimited file: delimiter from the suffix, or sniffed from the first line."""
    fs, inner = resolve(path)
    suffix, codec = _suffixes(inner)
    delimiter = DELIMITED_SUFFIXES.get(suffix) or _sniff_delimiter(fs, inner, codec)
    return CsvOptions(delimiter=delimiter)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    if hasattr(pa, "concat_batches"):  # pyarrow >= 19
        return pa.concat_batches(batches)
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _rebatch(batches: Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut batches to `batch_rows` rows (the last may be shorter): CSV blocks are sized in bytes."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < batch_rows:
            continue
        merged = _concat(pending)  # one copy per block; the slices below are zero-copy
        start = 0
        while rows - start >= batch_rows:
            yield merged.slice(start, batch_rows)
            start += batch_rows
        rest = merged.slice(start)
        pending, rows = ([rest] if rest.num_rows else []), rest.num_rows
    if rows:
        yield _concat(pending)


def _csv_reader(source: pa.NativeFile, options: CsvOptions, columns: list[str] | None) -> pacsv.CSVStreamingReader:
    read = pacsv.ReadOptions(
        column_names=options.column_names,
        skip_rows=options.skip_rows,
        encoding=options.encoding,
        block_size=CSV_BLOCK_BYTES,
    )
    parse = pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char='"' if options.quoting else False,
        invalid_row_handler=options.on_bad_line,
    )
    convert_kwargs: dict[str, Any] = {
        "include_columns": columns,
        "strings_can_be_null": options.strings_can_be_null,
    }
    if options.column_types:
        convert_kwargs["column_types"] = options.column_types
    if options.null_values is not None:
        convert_kwargs["null_values"] = options.null_values
    return pacsv.open_csv(
        source, read_options=read, parse_options=parse, convert_options=pacsv.ConvertOptions(**convert_kwargs)
    )


def _open_source(source: str | bytes) -> pa.NativeFile:
    if isinstance(source, bytes):
        return pa.BufferReader(source)
    fs, inner = resolve(source)
    info = _info(fs, inner, source)
    if info.type == pafs.FileType.Directory:
        raise data_error(source, "is a directory, expected a delimited text file")
    return fs.open_input_stream(inner, compression=_suffixes(inner)[1])


def _csv_header(source: str | bytes, options: CsvOptions) -> list[str]:
    with _open_source(source) as stream:
        return list(_csv_reader(stream, options, None).schema.names)


def iter_csv(
    source: str | bytes,
    options: CsvOptions,
    columns: list[str] | None = None,
    batch_rows: int = 65536,
    *,
    name: str = "",
) -> Generator[pa.RecordBatch, None, None]:
    """Stream a delimited file (path, URL or in-memory bytes) in `batch_rows` batches; `name` labels errors.

    Opening, the header, the requested columns and the first rows are checked before this returns.
    """
    label = name or (source if isinstance(source, str) else "<bytes>")
    stream = _open_source(source)
    try:
        reader = _csv_reader(stream, options, columns)
        first = _first_rows(reader, label)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        stream.close()
        _raise_csv_open_error(source, options, columns, label, exc)
    except BaseException:
        stream.close()
        raise
    return _stream_csv(stream, reader, first, label, batch_rows)


def _first_rows(reader: pacsv.CSVStreamingReader, label: str) -> pa.RecordBatch:
    for batch in reader:
        if batch.num_rows:
            return batch
    raise data_error(label, "has no data rows", "point at a file with at least one row")


def _stream_csv(
    stream: pa.NativeFile,
    reader: pacsv.CSVStreamingReader,
    first: pa.RecordBatch,
    label: str,
    batch_rows: int,
) -> Generator[pa.RecordBatch, None, None]:
    rows = 0
    try:
        for batch in _rebatch(itertools.chain([first], reader), batch_rows):
            rows += batch.num_rows
            yield batch
    except pa.ArrowInvalid as exc:
        raise data_error(
            label,
            f"cannot parse after {rows:,} rows: {exc}",
            "fix the bad line, or give column types; a column's type is inferred from the first "
            f"{CSV_BLOCK_BYTES >> 20} MiB, so empty or numeric-looking leading values can mislead it",
        ) from None
    finally:
        stream.close()


def _raise_csv_open_error(
    source: str | bytes, options: CsvOptions, columns: list[str] | None, label: str, exc: Exception
) -> NoReturn:
    if "Empty CSV file" in str(exc):
        raise data_error(label, "is empty", "point at a file with a header line and at least one row") from None
    if columns:
        header = _csv_header(source, options)
        missing = [c for c in columns if c not in header]
        if missing:
            raise data_error(
                label,
                f"missing column(s) {missing}; the file has {header}",
                "fix the column names in the config",
            ) from None
    raise data_error(label, f"cannot parse: {exc}", "check the delimiter, encoding and header line") from None


def _check_columns(path: str, names: list[str], columns: list[str] | None) -> None:
    missing = [c for c in columns or [] if c not in names]
    if missing:
        raise data_error(
            path, f"missing column(s) {missing}; the file has {names}", "fix the column names in the config"
        )


def _iter_parquet(
    fs: pafs.FileSystem, inner: str, path: str, columns: list[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    handle = fs.open_input_file(inner)
    try:
        # pre_buffer caches every column chunk read so far: RSS would grow with the file (measured: +460 MB
        # over a 20M-row file); off, a stream holds about one row group at a time.
        file = pq.ParquetFile(handle, pre_buffer=False)
        _check_columns(path, file.schema_arrow.names, columns)
        if file.metadata.num_rows == 0:
            raise data_error(path, "has no rows", "point at a file with at least one row")
    except pa.ArrowInvalid as exc:
        handle.close()
        raise data_error(path, f"is not a readable Parquet file: {exc}", "rewrite it with a Parquet writer") from None
    except BaseException:
        handle.close()
        raise
    return _closing(file.iter_batches(batch_size=batch_rows, columns=columns), handle)


def _closing(batches: Iterator[pa.RecordBatch], handle: pa.NativeFile) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    finally:
        handle.close()


def _dataset(fs: pafs.FileSystem, inner: str, path: str) -> pads.Dataset:
    dataset = pads.dataset(inner, filesystem=fs, format="parquet", exclude_invalid_files=True)
    if not dataset.files:
        raise data_error(path, "is a directory without Parquet files", "point at a file or a Parquet directory")
    return dataset


def _iter_parquet_dir(
    fs: pafs.FileSystem, inner: str, path: str, columns: list[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    dataset = _dataset(fs, inner, path)
    _check_columns(path, dataset.schema.names, columns)
    if dataset.count_rows() == 0:
        raise data_error(path, "has no rows", "point at a directory with at least one non-empty Parquet file")
    batches = dataset.to_batches(columns=columns, batch_size=batch_rows)
    return (batch for batch in batches if batch.num_rows)


def iter_batches(
    path: str, columns: list[str] | None = None, batch_rows: int = 65536, csv: CsvOptions | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream `columns` (default all) of a Parquet file/directory or CSV/TSV, `batch_rows` at a time.

    `csv` parses delimited text (default: `csv_options_for`, a headed file). Missing files or columns,
    unknown formats and files without rows raise DataError before this returns.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    path = str(path)
    fs, inner = resolve(path)
    kind = _format(fs, inner, path)
    if kind == "parquet":
        return _iter_parquet(fs, inner, path, columns, batch_rows)
    if kind == "parquet-dir":
        return _iter_parquet_dir(fs, inner, path, columns, batch_rows)
    return iter_csv(path, csv or csv_options_for(path), columns, batch_rows)


def read_table(path: str, columns: list[str] | None = None, csv: CsvOptions | None = None) -> pa.Table:
    """The whole file as one Arrow table (for data that fits in memory)."""
    batches = list(iter_batches(path, columns=columns, batch_rows=1 << 20, csv=csv))
    return pa.Table.from_batches(batches)


def is_delimited(path: str) -> bool:
    """True for delimited text (CSV/TSV/...), False for Parquet; raises DataError for a missing file."""
    fs, inner = resolve(str(path))
    return _format(fs, inner, str(path)) == "csv"


def read_schema(path: str) -> pa.Schema:
    """Column names and types without reading the data (CSV: inferred from the first block)."""
    path = str(path)
    fs, inner = resolve(path)
    kind = _format(fs, inner, path)
    if kind == "parquet":
        with fs.open_input_file(inner) as handle:
            return pq.read_schema(handle)
    if kind == "parquet-dir":
        return _dataset(fs, inner, path).schema
    batches = iter_csv(path, csv_options_for(path), None, 1)
    schema = next(batches).schema
    batches.close()
    return schema


def count_rows(path: str) -> int | None:
    """Row count from Parquet metadata (cheap); None for delimited text, which would need a full scan."""
    path = str(path)
    fs, inner = resolve(path)
    kind = _format(fs, inner, path)
    if kind == "parquet":
        with fs.open_input_file(inner) as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)
    if kind == "parquet-dir":
        return int(_dataset(fs, inner, path).count_rows())
    return None


def write_parquet(table: pa.Table, path: str, row_group_rows: int = 131072) -> None:
    """Write `table` as Parquet, creating parent dirs; written aside and moved, so no reader sees half a file.

    Row groups of `row_group_rows` bound the memory a streaming reader needs.
    """
    path = str(path)
    fs, inner = resolve(path)
    parent = str(PurePosixPath(inner).parent)
    if parent not in ("", "."):
        fs.create_dir(parent, recursive=True)
    partial = f"{inner}.partial"
    pq.write_table(table, partial, filesystem=fs, row_group_size=row_group_rows)
    fs.move(partial, inner)
    log.debug("wrote %s rows to %s", f"{table.num_rows:,}", path)


def read_bytes(path: str) -> bytes:
    """The whole (decompressed) file as bytes, for layouts Arrow cannot parse directly (`::` separators)."""
    with _open_source(str(path)) as stream:
        return stream.read()


def read_bytes_head(path: str, n: int = 1 << 16) -> bytes:
    """The first `n` (decompressed) bytes of a file, for sniffing its layout."""
    with _open_source(str(path)) as stream:
        head: bytes = stream.read(n)
    if not head:
        raise data_error(str(path), "is empty", "point at a file with at least one row")
    return head
