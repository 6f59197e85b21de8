"""Contract every registered embedding storage kind passes: lookup, update by the training optimizers, save /
load into a fresh table with the same outputs. Kinds come from the TABLES registry and their settings from the
examples their storage config class gives in the JSON Schema (the tiered table is the dynamic kind's `tier:`
example), so a new kind or example is checked without editing this file.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
import torch

from recforge.config.features import Storage
from recforge.config.schema import OptimizerConfig
from recforge.embedding.tables import TABLES, build_table
from recforge.schema import TableSpec
from recforge.state_io import load_state, save_state
from recforge.train.optim import build_optimizers

ROWS, DIM = 40, 4
IDS = torch.tensor([[1, 5, 7], [7, 39, 0], [12, 12, 3]])
UNSEEN = torch.tensor([[20, 21, 22]])


def storage_examples() -> list[tuple[str, dict[str, Any]]]:
    """(kind, storage settings) for every example of every storage config class."""
    classes = typing.get_args(typing.get_args(Storage)[0])
    out = []
    for cls in classes:
        kind = typing.get_args(cls.model_fields["kind"].annotation)[0]
        extra = cls.model_config.get("json_schema_extra")
        examples = extra.get("examples", []) if isinstance(extra, dict) else []
        out += [(kind, cls.model_validate(e).model_dump(mode="json")) for e in examples or [{"kind": kind}]]
    return out


CASES = storage_examples()


def test_every_registered_storage_kind_has_a_config_and_an_example() -> None:
    assert sorted({kind for kind, _ in CASES}) == TABLES.names()


def build(storage: dict[str, Any], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_table(TableSpec("t", ROWS, DIM, storage=storage))


def train_steps(table: torch.nn.Module, steps: int) -> None:
    """`steps` training lookups of IDS with loss = sum of squares of the rows, through the trainer's optimizers."""
    model = torch.nn.Module()  # a model round the table, as in training: it has dense parameters of its own
    model.table, model.bias = table, torch.nn.Parameter(torch.zeros(1))
    optimizers = build_optimizers(model, OptimizerConfig(dense="sgd", lr=0.1, sparse="rowwise_adagrad", sparse_lr=0.01))
    table.train()
    for _ in range(steps):
        table(IDS).square().sum().backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad()


@pytest.mark.parametrize(("kind", "storage"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_lookup_update_save_and_load_give_the_same_rows(kind: str, storage: dict[str, Any], tmp_path: Path) -> None:
    table = build(storage, 0)
    out = table(IDS)
    assert out.shape == (*IDS.shape, DIM) and out.dtype == torch.float32 and torch.isfinite(out).all()
    table.eval()
    before = table(IDS).detach().clone()
    train_steps(table, 3)
    table.eval()
    after, unseen = table(IDS).detach(), table(UNSEEN).detach()
    assert not torch.equal(after, before)  # the update reached the rows the lookups read
    assert after.square().sum() < before.square().sum()  # ... in the direction that lowers the loss

    save_state(table.state_dict(), tmp_path / "table")
    fresh = build(storage, 1)
    fresh.load_state_dict(load_state(tmp_path / "table"))
    fresh.eval()
    assert torch.equal(fresh(IDS), after)
    assert torch.equal(fresh(UNSEEN), unseen)
