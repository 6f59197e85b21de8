"""Shared layers against brute force and their statistical contract."""

from __future__ import annotations

import itertools

import torch

from recforge.models.layers import CrossNetV2, FactorizationMachine
from recforge.models.layers.dropout import FastDropout


def test_fm_equals_the_sum_over_field_pairs() -> None:
    torch.manual_seed(0)
    emb = torch.randn(4, 5, 3)
    brute = sum((emb[:, i] * emb[:, j]).sum(dim=1) for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(FactorizationMachine()(emb), brute)


def test_fast_dropout_zeroes_p_and_rescales_the_rest() -> None:
    torch.manual_seed(0)
    layer = FastDropout(0.2)
    out = layer(torch.ones(1000, 1000))
    assert abs((out == 0).float().mean().item() - 0.2) < 0.002
    assert set(out.unique().tolist()) == {0.0, 1.25}
    layer.eval()
    assert torch.equal(layer(torch.ones(3, 3)), torch.ones(3, 3))


def test_fast_dropout_gradient_uses_the_same_mask() -> None:
    x = torch.ones(64, 32, requires_grad=True)
    out = FastDropout(0.5)(x)
    out.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, out.detach())


def test_cross_layer_is_x0_times_linear_plus_x() -> None:
    torch.manual_seed(0)
    cross = CrossNetV2(dim=4, layers=1)
    x0 = torch.randn(2, 4)
    linear = cross.maps[0]
    torch.testing.assert_close(cross(x0), x0 * linear(x0) + x0)


def test_mlp_dropout_first_drops_the_inputs_like_recbole() -> None:
    from recforge.models.layers import MLP, MLPConfig

    after = MLP(8, MLPConfig(hidden=(4,), dropout=0.1))
    first = MLP(8, MLPConfig(hidden=(4,), dropout=0.1, dropout_first=True))
    assert [type(m).__name__ for m in after.net] == ["Linear", "ReLU", "FastDropout"]
    assert [type(m).__name__ for m in first.net] == ["FastDropout", "Linear", "ReLU"]
