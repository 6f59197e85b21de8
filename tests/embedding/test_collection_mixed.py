"""EmbeddingCollection with static and dynamic tables: the static ones stay fused, field order holds."""

from __future__ import annotations

import torch

from recforge.batch import Batch
from recforge.embedding import DynamicTable
from recforge.embedding.collection import EmbeddingCollection
from recforge.schema import FieldSpec, InputSchema, TableSpec

DYNAMIC = {"kind": "dynamic", "initial_capacity": 16}


def mixed_schema() -> InputSchema:
    names = ("a", "dyn_b", "c", "d", "dyn_e")  # fused runs: [a], [c, d] around the dynamic fields
    return InputSchema(
        fields=tuple(FieldSpec(n, "id", "user", table=n, dim=4) for n in names),
        tables=tuple(TableSpec(n, 10, 4, DYNAMIC if n.startswith("dyn") else {"kind": "static"}) for n in names),
    )


def test_static_tables_stay_fused_next_to_dynamic_ones_in_field_order() -> None:
    torch.manual_seed(0)
    coll = EmbeddingCollection(mixed_schema())
    assert set(coll.table_offsets) == {"a", "c", "d"} and set(coll.tables) == {"dyn_b", "dyn_e"}
    assert isinstance(coll.tables["dyn_b"], DynamicTable) and not coll.fused
    ids = torch.tensor([[1, 100, 2, 3, 200], [4, 101, 5, 6, 201]])
    coll.train()
    out = coll(Batch(ids=ids, bags={}, dense=torch.zeros(2, 0), labels={})).stacked()  # [B, F, D]
    assert out.shape == (2, 5, 4)
    for col, name in ((0, "a"), (2, "c"), (3, "d")):
        expected = coll.weight[ids[:, col] + coll.table_offsets[name]]
        torch.testing.assert_close(out[:, col], expected)
    coll.eval()  # dynamic rows read back by key in their own columns
    again = coll(Batch(ids=ids, bags={}, dense=torch.zeros(2, 0), labels={})).stacked()
    torch.testing.assert_close(again[:, 1], coll.tables["dyn_b"](ids[:, 1]))
    torch.testing.assert_close(again[:, 4], coll.tables["dyn_e"](ids[:, 4]))
    out.sum().backward()  # gradients reach the fused weight
    assert coll.weight.grad is not None and coll.weight.grad.abs().sum() > 0
