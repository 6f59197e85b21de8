"""DynamicTable's steady-state train lookup (every id known: distinct slots without a sort)."""

from __future__ import annotations

import torch

from recforge.config.features import DynamicStorage
from recforge.embedding import DynamicTable


def test_known_ids_with_repeats_count_and_sum_gradients_per_id() -> None:
    torch.manual_seed(0)
    t = DynamicTable(4, DynamicStorage(kind="dynamic", initial_capacity=8))
    t.configure_optimizer("rowwise_adagrad", 0.1)
    t.train()
    with torch.no_grad():
        t(torch.tensor([10, 20, 30, 40]))  # admit (no gradient)
    before = t.weight.clone()
    ids = torch.tensor([30, 10, 30, 30, 40, 10])  # all known, with repeats
    rows = t.rows_of(ids)
    out = t(ids)
    torch.testing.assert_close(out, before[rows])
    weights = torch.arange(1.0, 7.0).unsqueeze(1)  # gradient of id j's row: sum of its positions' weights
    (out * weights).sum().backward()
    assert [int(t.freq[t.rows_of(torch.tensor([k]))]) for k in (10, 20, 30, 40)] == [3, 1, 4, 2]
    for key, grad in ((10, 2.0 + 6.0), (30, 1.0 + 3.0 + 4.0), (40, 5.0)):
        row = int(t.rows_of(torch.tensor([key])))
        g = torch.full((4,), grad)
        expected = before[row] - 0.1 * g / (g.square().mean().sqrt() + 1e-8)
        torch.testing.assert_close(t.weight[row], expected)
    untouched = int(t.rows_of(torch.tensor([20])))
    torch.testing.assert_close(t.weight[untouched], before[untouched])


def test_sparse_adam_path_matches_a_reference_step() -> None:
    torch.manual_seed(0)
    t = DynamicTable(2, DynamicStorage(kind="dynamic", initial_capacity=4))
    t.configure_optimizer("sparse_adam", 0.01)
    t.train()
    with torch.no_grad():
        t(torch.tensor([1, 2]))
    before = t.weight.clone()
    t(torch.tensor([2, 2])).sum().backward()  # grad of id 2's row: 2 per column
    row = int(t.rows_of(torch.tensor([2])))
    m, v = 0.1 * 2.0, 0.001 * 4.0
    step = 0.01 * (m / 0.1) / ((v / 0.001) ** 0.5 + 1e-8)
    torch.testing.assert_close(t.weight[row], before[row] - step)
    assert int(t.opt_steps[row]) == 1
