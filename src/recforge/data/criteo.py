"""Criteo display-ads TSV: label, 13 integer counts I1..I13, 26 hashed categoricals C1..C26, no header.

Empty fields are missing values. Test files without the label column (39 fields) are read too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pyarrow as pa

from recforge.data.raw import RawTables
from recforge.data.readers import CsvOptions, data_error, iter_csv, read_bytes_head

log = logging.getLogger(__name__)

INT_COLUMNS = [f"I{i}" for i in range(1, 14)]
CAT_COLUMNS = [f"C{i}" for i in range(1, 27)]
COLUMNS = ["label", *INT_COLUMNS, *CAT_COLUMNS]
TYPES = {"label": pa.int64()} | {c: pa.float64() for c in INT_COLUMNS} | {c: pa.string() for c in CAT_COLUMNS}


def criteo_options(path: str) -> CsvOptions:
    """Parse options for one Criteo file; the field count of the first line says whether it has labels."""
    first = read_bytes_head(path).split(b"\n", 1)[0]
    fields = first.count(b"\t") + 1
    if fields == len(COLUMNS):
        names = COLUMNS
    elif fields == len(COLUMNS) - 1:
        names = COLUMNS[1:]
    else:
        raise data_error(
            path,
            f"line 1 has {fields} tab-separated fields, a Criteo file has 40 (label, I1..I13, C1..C26) or 39",
            "check that this is a Criteo-format TSV without a header line",
        )
    return CsvOptions(
        delimiter="\t",
        column_names=names,
        column_types={n: TYPES[n] for n in names},
        quoting=False,
        null_values=[""],
        strings_can_be_null=True,
    )


def iter_criteo(path: str, batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
    """Stream a Criteo TSV as typed, named record batches (label int64, I* float64, C* string; nulls kept)."""
    return iter_csv(str(path), criteo_options(str(path)), batch_rows=batch_rows)


def load_criteo(path: str) -> RawTables:
    """The whole file as a behavior table (Criteo has no user or item side tables)."""
    table = pa.Table.from_batches(list(iter_criteo(path, batch_rows=1 << 20)))
    log.info("loaded %s Criteo rows from %s", f"{table.num_rows:,}", path)
    return RawTables(behavior=table, users=None, items=None, origin=str(path))
