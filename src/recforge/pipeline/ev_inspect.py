"""Embedding variable tools: what one feature's table holds (`inspect_embedding`) and the collision rate a
hash size gives on real ids (`collision_rates`). Both return Arrow tables; `recforge ev` prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from recforge.embedding.collection import EmbeddingCollection
from recforge.embedding.dynamic import DynamicTable
from recforge.embedding.multi_hash import MultiHashTable, bucket_indices
from recforge.embedding.tables import StaticTable
from recforge.embedding.tiered import TieredTable
from recforge.errors import ConfigError
from recforge.features import FeatureSet, FeatureState, TransformReport
from recforge.features.categorical import dynamic_keys
from recforge.hashing import hash_values


def _vector_columns(vectors: torch.Tensor) -> dict[str, pa.Array]:
    """norm (torch.linalg.norm per row) and the vector as a fixed-size list of float32."""
    vectors = vectors.detach().float().cpu()
    norms = torch.linalg.norm(vectors, dim=1).numpy()
    flat = pa.array(vectors.reshape(-1).numpy(), pa.float32())
    return {"norm": pa.array(norms, pa.float32()), "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}


def _collection_for(model: nn.Module, table: str) -> EmbeddingCollection:
    """The model's (first, full-dim) EmbeddingCollection holding `table`; its linear part comes later."""
    for module in model.modules():
        if isinstance(module, EmbeddingCollection) and table in module.dims:
            return module
    raise ConfigError(f"features ({table})", f"the model has no embedding table {table!r}")


def _top(table: pa.Table, top: int | None) -> pa.Table:
    return table if top is None else table.slice(0, top)


def inspect_embedding(
    model: nn.Module, features: FeatureSet, feature: str, top: int | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """One row per stored vector of `feature`'s table and a summary (kind, rows, dim, bytes, ...).

    dynamic: key, freq, last_step, idle_steps, norm, vector; most frequent first (ties by key).
    static: row, (vocab value `id` and its training `count` when the feature has a vocabulary), norm, vector,
    in row order (row 0 is the OOV/missing row; vocab rows are most frequent first).
    multi_hash: hash, bucket, norm, vector. `top` keeps the first N rows of that order.
    """
    try:
        field = features.schema().field(feature)
    except KeyError:
        names = ", ".join(f.name for f in features.schema().fields if f.table)
        raise ConfigError("--feature", f"no embedded feature {feature!r}", fix=f"one of: {names}") from None
    name = field.table or feature
    collection = _collection_for(model, name)
    dim = collection.dims[name]
    module = None if name in collection.table_offsets else collection.tables[name]  # None: in the fused weight
    if isinstance(module, DynamicTable):
        return _inspect_dynamic(module, name, top)
    if isinstance(module, MultiHashTable):
        return _inspect_multi_hash(module, name, top)
    if module is None:
        start = collection.table_offsets[name]
        rows = collection.schema.table(name).num_embeddings
        vectors = collection.weight[start : start + rows, :dim]
    elif isinstance(module, StaticTable):
        vectors = module.weight
    else:
        raise ConfigError(f"features ({feature})", f"cannot inspect a {type(module).__name__} table")
    return _inspect_static(vectors, features.states.get(name), name, top)


def _inspect_static(
    vectors: torch.Tensor, state: FeatureState | None, name: str, top: int | None
) -> tuple[pa.Table, dict[str, Any]]:
    rows, dim = vectors.shape
    columns: dict[str, pa.Array] = {"row": pa.array(np.arange(rows, dtype=np.int64))}
    summary: dict[str, Any] = {"table": name, "kind": "static", "rows": rows, "dim": dim}
    vocab = state.arrays.get("vocab") if state is not None else None
    if vocab is not None:  # row i + 1 holds vocab[i]; row 0 is the OOV/missing row
        columns["id"] = pa.concat_arrays([pa.nulls(1, vocab.type), vocab])
        counts = state.arrays.get("counts") if state is not None else None
        if counts is not None:
            columns["count"] = pa.concat_arrays([pa.nulls(1, counts.type), counts.cast(pa.int64())])
        summary["vocab_size"] = len(vocab)
    elif state is not None and state.params.get("hash_buckets"):
        summary["hash_buckets"] = int(state.params["hash_buckets"])
    columns.update(_vector_columns(vectors))
    summary["bytes"] = rows * dim * vectors.element_size()
    return _top(pa.table(columns), top), summary


def _inspect_multi_hash(module: MultiHashTable, name: str, top: int | None) -> tuple[pa.Table, dict[str, Any]]:
    rows = module.weight.shape[0]
    index = np.arange(rows, dtype=np.int64)
    columns = {"hash": pa.array(index // module.buckets), "bucket": pa.array(index % module.buckets)}
    columns.update(_vector_columns(module.weight))
    summary = {
        "table": name,
        "kind": "multi_hash",
        "rows": rows,
        "dim": module.dim,
        "buckets": module.buckets,
        "hashes": module.hashes,
        "combine": module.combine,
        "bytes": module.weight.numel() * module.weight.element_size(),
    }
    return _top(pa.table(columns), top), summary


def _inspect_dynamic(table: DynamicTable, name: str, top: int | None) -> tuple[pa.Table, dict[str, Any]]:
    alive = torch.nonzero(table.alive).squeeze(1)
    all_freq = table.slot_array("freq")  # through the tiers of a tiered table
    keys, freq = table.slot_keys[alive], all_freq[alive]
    order = np.lexsort((keys.numpy(), -freq.numpy()))  # most frequent first, ties by key
    alive = alive[torch.from_numpy(order)]
    step = int(table.step)
    last = table.slot_array("last_step")[alive]
    columns: dict[str, pa.Array] = {
        "key": pa.array(table.slot_keys[alive].numpy()),
        "freq": pa.array(all_freq[alive].numpy()),
        "last_step": pa.array(last.numpy()),
        "idle_steps": pa.array((step - last).numpy()),
    }
    columns.update(_vector_columns(table.slot_array("weight")[alive]))
    rows = len(alive)
    admission = table.config.admission
    seen: float | None
    if admission is None:
        seen, how = rows, "no admission: every id seen is admitted (evicted ids are not counted)"
    elif admission.kind == "counter":
        seen = rows + len(table.pending_keys)
        how = "exact: admitted rows + ids still counting toward min_count (evicted ids are not counted)"
    else:  # counting Bloom filter: distinct ids from the share of non-zero counters (Swamidass & Baldi)
        cells, used = len(table.bloom), int((table.bloom > 0).sum())
        seen = -cells / table.bloom_hashes * math.log1p(-used / cells) if used < cells else None
        how = "estimated from the counting Bloom filter's fill"
    state_bytes = sum(t.numel() * t.element_size() for t in table.state_dict().values())
    summary: dict[str, Any] = {
        "table": name,
        "kind": "dynamic",
        "rows": rows,
        "dim": table.dim,
        "capacity": table.capacity,
        "step": step,
        "ids_seen": None if seen is None else round(seen),
        "admitted_share": None if not seen else min(1.0, rows / seen),
        "admitted_share_basis": how,
        "evicted": None,  # DynamicTable does not count its evictions
        "bytes": rows * table.dim * table.weight.element_size(),
        "state_bytes": state_bytes,
    }
    if isinstance(table, TieredTable):  # rows above were read through the tiers
        summary["tier"] = {
            "ram_bytes": table.tier.ram_bytes,
            "resident_bytes": table.resident_bytes(),
            "hot_rows": table.hot_rows,
            "policy": table.tier.policy,
            "row_file_bytes": table.file.nbytes,
            "directory_bytes": table.directory_bytes(),
        }
    return _top(pa.table(columns), top), summary


# ------------------------------------------------------------------------------------------- collisions
def id_keys(values: pa.Array) -> np.ndarray:
    """int64 key per value as an id feature with raw-key storage (dynamic, multi_hash) reads it."""
    state = FeatureState(arrays={"dtype": pa.array([], values.type)})
    return dynamic_keys(values, state, "ids", TransformReport())


def colliding(signatures: np.ndarray) -> int:
    """How many rows of [n, k] `signatures` equal at least one other row."""
    if len(signatures) < 2:
        return 0
    order = np.lexsort(signatures.T[::-1])
    ordered = signatures[order]
    same = np.all(ordered[1:] == ordered[:-1], axis=1)
    shared = np.zeros(len(ordered), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    return int(shared.sum())


def collision_rates(values: pa.Array | pa.ChunkedArray, buckets: Sequence[int], hashes: int = 1) -> pa.Table:
    """Share of the distinct non-null ids whose bucket (hashes=1: static `hash_buckets: B`) or full k-bucket
    signature (hashes=k: `multi_hash` with `buckets: B, hashes: k`) is shared with another id, per size.

    `expected_rate` is what uniformly random hashing gives: 1 - (1 - B^-k)^(n - 1).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    distinct = pc.unique(values.drop_null())
    n = len(distinct)
    hashed = hash_values(distinct) if hashes == 1 else None
    keys = id_keys(distinct) if hashes > 1 else None
    out: dict[str, list[Any]] = {k: [] for k in ("buckets", "hashes", "rows", "distinct_ids", "colliding_ids")}
    out.update(collision_rate=[], expected_rate=[])
    for b in buckets:
        if b < 2:
            raise ValueError(f"buckets must be >= 2, not {b}")
        if hashed is not None:
            signatures = (hashed % np.uint64(b)).astype(np.int64)[:, None]
        else:
            assert keys is not None
            signatures = bucket_indices(keys, b, hashes)
        hit = colliding(signatures)
        out["buckets"].append(b)
        out["hashes"].append(hashes)
        out["rows"].append(b * hashes)
        out["distinct_ids"].append(n)
        out["colliding_ids"].append(hit)
        out["collision_rate"].append(hit / n if n else 0.0)
        out["expected_rate"].append(-math.expm1((n - 1) * math.log1p(-(float(b) ** -hashes))) if n else 0.0)
    return pa.table(out)
