"""Optimizers: row-wise Adagrad arithmetic by hand, and every sparse optimizer training a real model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from recforge import pipeline
from recforge.config import build_config
from recforge.train.optim import RowwiseAdagrad

from support import small_synthetic


def test_rowwise_adagrad_updates_only_touched_rows_with_one_accumulator_each() -> None:
    weight = nn.Parameter(torch.zeros(3, 2))
    opt = RowwiseAdagrad([weight], lr=0.1, eps=0.0)
    nn.functional.embedding(torch.tensor([1, 1]), weight, sparse=True).sum().backward()
    opt.step()
    # row 1 gradient is [2, 2]: accumulator = mean(g^2) = 4, step = 0.1 * g / sqrt(4) = 0.1
    torch.testing.assert_close(weight.data, torch.tensor([[0.0, 0.0], [-0.1, -0.1], [0.0, 0.0]]))
    assert opt.state[weight]["sum"].tolist() == [0.0, 4.0, 0.0]


@pytest.mark.parametrize("sparse", ["rowwise_adagrad", "sparse_adam"])
def test_sparse_embedding_optimizers_learn(sparse: str, tmp_path: Path) -> None:
    lr = {"rowwise_adagrad": 0.05, "sparse_adam": 0.003}[sparse]
    tree = small_synthetic(epochs=1, optimizer={"sparse": sparse, "sparse_lr": lr, "lr": 0.003})
    result = pipeline.train(build_config(tree), tmp_path / sparse)
    # measured: ~0.69 after one epoch; an untrained model scores 0.5
    assert result.metrics["test"]["auc"] > 0.64, result.metrics
