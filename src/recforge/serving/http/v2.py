"""KServe Open Inference Protocol v2 (REST) tensors <-> Arrow columns, with Triton's binary extension.

A request names one tensor per model input column (shape [n] or [n, 1]); the answer is one `score`
tensor of shape [n]. Triton's binary-tensor extension is supported both ways, so `tritonclient`
works with its defaults: the JSON header is followed by raw little-endian buffers, its length in the
`Inference-Header-Content-Length` HTTP header, each buffer's size in `parameters.binary_data_size`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from recforge.errors import DataError

HEADER = "Inference-Header-Content-Length"
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


@dataclass
class InferRequest:
    id: str | None
    table: pa.Table
    binary_output: bool
    outputs: list[str]


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [v for row in data for v in _flatten(row)]
    return data


def _decode_bytes(buffer: bytes, name: str) -> list[str]:
    """BYTES binary form: each element is a 4-byte little-endian length and that many bytes."""
    out, pos = [], 0
    while pos < len(buffer):
        if pos + 4 > len(buffer):
            raise DataError(f"input {name!r}: truncated BYTES element length")
        (size,) = struct.unpack_from("<I", buffer, pos)
        pos += 4
        if pos + size > len(buffer):
            raise DataError(f"input {name!r}: truncated BYTES element")
        out.append(buffer[pos : pos + size].decode("utf-8", errors="replace"))
        pos += size
    return out


def _column(spec: Any, binary: bytes | None) -> pa.Array:
    """One input tensor (a validated `InferInput`) as an Arrow column of one value per row."""
    name, datatype, shape = spec.name, spec.datatype, spec.shape
    if len(shape) == 2 and shape[1] != 1:
        raise DataError(f"input {name!r}: shape {shape}; one value per row is expected ([n] or [n, 1])")
    n = shape[0]
    try:
        if datatype == "BYTES":
            values: Any = _decode_bytes(binary, name) if binary is not None else [str(v) for v in _flatten(spec.data)]
        elif binary is not None:
            values = np.frombuffer(binary, dtype=DTYPES[datatype])
        else:
            values = np.asarray(_flatten(spec.data), dtype=DTYPES[datatype])
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"input {name!r}: data is not {datatype}: {exc}") from None
    if len(values) != n:
        raise DataError(f"input {name!r}: shape says {n} values, {len(values)} were sent")
    return pa.array(values)


def parse_infer(head: Any, buffers: bytes) -> InferRequest:
    """A validated v2 infer request (its JSON part) and the binary buffers after it -> one Arrow table."""
    columns: dict[str, pa.Array] = {}
    offset = 0
    for spec in head.inputs:
        size = spec.parameters.binary_data_size if spec.parameters is not None else None
        binary = None
        if size is not None:
            binary = buffers[offset : offset + size]
            if len(binary) != size:
                left = len(buffers) - offset
                raise DataError(f"input {spec.name!r}: binary_data_size {size}, but only {left} body bytes are left")
            offset += size
        elif spec.data is None:
            raise DataError(f"input {spec.name!r} has neither `data` nor `parameters.binary_data_size`")
        if spec.name in columns:
            raise DataError(f"input {spec.name!r} is given twice")
        columns[spec.name] = _column(spec, binary)
    if offset != len(buffers):
        raise DataError(f"{len(buffers) - offset} body bytes follow the last binary input; no input claims them")
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise DataError(f"inputs differ in length: {sorted(lengths)}")
    requested = head.outputs or []
    binary_output = bool(head.parameters is not None and head.parameters.binary_data_output) or any(
        o.parameters is not None and o.parameters.binary_data for o in requested
    )
    return InferRequest(head.id, pa.table(columns), binary_output, [o.name for o in requested])


def infer_response(
    model: str, version: str, request_id: str | None, scores: np.ndarray | Mapping[str, np.ndarray], binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The v2 answer: one FP32 output per entry of `scores` (an array is the one `score`); binary when asked."""
    named = {"score": scores} if isinstance(scores, np.ndarray) else scores
    arrays = {name: np.ascontiguousarray(values, dtype="<f4") for name, values in named.items()}
    outputs: list[dict[str, Any]] = [
        {"name": name, "datatype": "FP32", "shape": [len(values)]} for name, values in arrays.items()
    ]
    head: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request_id is not None:
        head["id"] = request_id
    if not binary:
        for output, values in zip(outputs, arrays.values(), strict=True):
            output["data"] = values.tolist()
        return json.dumps(head).encode(), {}
    for output, values in zip(outputs, arrays.values(), strict=True):
        output["parameters"] = {"binary_data_size": values.nbytes}
    header = json.dumps(head).encode()
    return header + b"".join(v.tobytes() for v in arrays.values()), {HEADER: str(len(header))}
