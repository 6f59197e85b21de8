"""Rows on the wire: one compact JSON object per event, the Arrow schema kept once beside the stream.

JSON keeps events readable by any consumer; the schema restores exact Arrow types on the way back
(ints stay ints, floats round-trip through their shortest exact repr, temporal columns travel as
integers of their unit).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from recforge.errors import DataError


def schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_text(text: str | bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _wire_type(type_: pa.DataType) -> pa.DataType:
    """Temporal types travel as their integer storage (JSON has no dates); others as they are."""
    if not pat.is_temporal(type_):
        return type_
    return pa.int64() if pat.is_timestamp(type_) or type_.bit_width == 64 else pa.int32()


def _wire(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([pa.field(f.name, _wire_type(f.type)) for f in table.schema]))


def encode_rows(table: pa.Table) -> list[bytes]:
    """One JSON document per row, in order."""
    for field_ in table.schema:
        if pat.is_map(field_.type) or pat.is_decimal(field_.type) or pat.is_binary(field_.type):
            raise DataError(f"column {field_.name!r} of type {field_.type} cannot travel as a JSON event")
    return [json.dumps(row, separators=(",", ":"), allow_nan=True).encode() for row in _wire(table).to_pylist()]


def decode_rows(payloads: list[bytes | str], schema: pa.Schema | None) -> pa.Table:
    """Rows back to a table; with the producer's schema the types are exactly the ones written."""
    rows: list[dict[str, Any]] = [json.loads(p) for p in payloads]
    if schema is None:
        return pa.Table.from_pylist(rows)
    wire = pa.schema([pa.field(f.name, _wire_type(f.type)) for f in schema])
    table = pa.Table.from_pylist(rows, schema=wire)
    return table.cast(schema) if wire != schema else table
