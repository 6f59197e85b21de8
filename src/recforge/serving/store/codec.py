"""How a row is stored in Redis: one hash per key, one field per column, each value as compact JSON text.

JSON per field keeps values readable with `redis-cli HGETALL` and round-trips exactly: Python writes a
float as its shortest repr, which parses back to the same bits (±Infinity, -0.0 and subnormals too; a NaN
comes back as the canonical NaN), ints keep arbitrary precision, strings, lists and structs are JSON
natives, and null is `null` (stored, so a re-push overwrites every field). Types JSON lacks are stored as
their Arrow storage: temporal columns as integer counts of their unit, binary as base64 strings. The Arrow
schema (IPC bytes) lives in the entity's meta hash, so reads restore each column's exact type (int8 vs
int64, float32, timestamp unit and zone). Dictionary columns are stored as their values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from recforge.errors import DataError

ENCODING = "json-v1"
_dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode
_TEMPORAL_STORAGE = {"date32": pa.int32(), "time32": pa.int32()}


def _storage(type_: pa.DataType) -> pa.DataType | None:
    """Integer storage of a temporal type (what is written), None for any other type."""
    if pa.types.is_temporal(type_):
        return _TEMPORAL_STORAGE.get(str(type_).split("[")[0], pa.int64())
    return None


def _is_json(type_: pa.DataType) -> bool:
    """Whether Arrow's Python values of this type are JSON values that parse back to the same values."""
    t = pa.types
    if t.is_null(type_) or t.is_boolean(type_) or t.is_integer(type_) or t.is_string(type_):
        return True
    if t.is_large_string(type_) or t.is_float32(type_) or t.is_float64(type_):
        return True
    if t.is_list(type_) or t.is_large_list(type_) or t.is_fixed_size_list(type_):
        return _is_json(type_.value_type)
    if t.is_struct(type_):
        return all(_is_json(type_.field(i).type) for i in range(type_.num_fields))
    return False


def _is_binary(type_: pa.DataType) -> bool:
    return bool(pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_fixed_size_binary(type_))


def storable_schema(schema: pa.Schema, key: str, where: str) -> pa.Schema:
    """`schema` as stored: dictionary columns become their value type; unsupported types raise DataError."""
    if key not in schema.names:
        raise DataError(f"{where}: no key column {key!r}; it has {schema.names}\n  fix: pass the key column name")
    key_type = schema.field(key).type
    if not (pa.types.is_integer(key_type) or pa.types.is_string(key_type) or pa.types.is_large_string(key_type)):
        raise DataError(f"{where}: key column {key!r} is {key_type}\n  fix: use an integer or string key column")
    fields, bad = [], []
    for field in schema:
        type_ = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if not (_is_json(type_) or _storage(type_) is not None or _is_binary(type_)):
            bad.append(f"{field.name} ({type_})")
        fields.append(field.with_type(type_))
    if bad:
        raise DataError(
            f"{where}: column(s) {bad} cannot be stored\n  fix: cast them to numbers, strings, lists, structs, "
            "temporal or binary types, or leave them out"
        )
    return pa.schema(fields)


def encode_column(column: pa.Array, type_: pa.DataType) -> list[bytes]:
    """One JSON text per row of `column` (already cast to the stored `type_`)."""
    storage = _storage(type_)
    if storage is not None:
        column = column.cast(storage)
    elif _is_binary(type_):
        return [b"null" if v is None else b'"' + base64.b64encode(v) + b'"' for v in column.to_pylist()]
    if pa.types.is_integer(column.type):
        return [b"null" if v is None else b"%d" % v for v in column.to_pylist()]
    return [_dumps(v).encode() for v in column.to_pylist()]


def encode_batch(batch: pa.RecordBatch, schema: pa.Schema) -> list[list[bytes]]:
    """Column-major JSON texts of a batch whose columns are those of the stored `schema`."""
    return [encode_column(batch.column(i).cast(f.type), f.type) for i, f in enumerate(schema)]


def column_text(raw: list[bytes | None]) -> bytes:
    """Stored texts of one column as one JSON array, absent values as null (what the read script returns)."""
    return b"[" + b",".join(b"null" if v is None else v for v in raw) + b"]"


def decode_array(text: bytes, type_: pa.DataType) -> pa.Array:
    """A column's JSON array text as an Arrow array of the stored type."""
    values = json.loads(text)
    if _is_binary(type_):
        values = [None if v is None else base64.b64decode(v) for v in values]
    return pa.array(values, type=type_)


def decode_values(text: bytes, type_: pa.DataType) -> list[Any]:
    """The same column as Python values, equal to what Arrow's `to_pylist` gives for the source column."""
    if _is_json(type_):
        return json.loads(text)  # type: ignore[no-any-return]
    return decode_array(text, type_).to_pylist()
