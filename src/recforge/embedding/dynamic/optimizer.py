"""The row updates a dynamic table runs inside backward: row-wise Adagrad and lazy (row-wise) Adam.

Design choice: the update is fused into backward, with the optimizer state kept per row in the table's
own slot arrays, so it is allocated, reset, evicted and saved with the row. The trainer's optimizers
never see a dynamic table (it has no nn.Parameter); `build_optimizers` hands the table
`train.optimizer.sparse` and its lr. `rowwise_adagrad` runs the same rule as `RowwiseAdagrad`;
`sparse_adam` and `dense_adam` run lazy Adam with per-row step counts. Weight decay does not apply.
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("rowwise_adagrad", "sparse_adam", "dense_adam")
ADAM_BETAS = (0.9, 0.999)
EPS = 1e-8


def check_optimizer(kind: str) -> None:
    """Raise for an optimizer a dynamic table cannot run."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"dynamic tables support {', '.join(OPTIMIZERS)}, not {kind!r}")


def rowwise_adagrad(
    weight: torch.Tensor, opt_sum: torch.Tensor, slots: torch.Tensor, grad: torch.Tensor, lr: float
) -> None:
    """One Adagrad step per distinct slot, with one accumulator per row: gather, update, scatter."""
    total = opt_sum.index_select(0, slots).add_(grad.square().mean(dim=1))
    opt_sum.index_copy_(0, slots, total)
    scale = total.sqrt_().add_(EPS).reciprocal_().mul_(-lr)
    weight.index_add_(0, slots, grad * scale.unsqueeze(1))  # one read-modify-write pass


def lazy_adam(
    weight: torch.Tensor,
    moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    slots: torch.Tensor,
    grad: torch.Tensor,
    lr: float,
) -> None:
    """One Adam step per distinct slot; `moments` = (opt_m, opt_v, opt_steps), updated in place."""
    opt_m, opt_v, opt_steps = moments
    b1, b2 = ADAM_BETAS  # distinct slots: index_select / index_copy_ (cheaper than advanced indexing)
    m = opt_m.index_select(0, slots).mul_(b1).add_(grad, alpha=1 - b1)
    v = opt_v.index_select(0, slots).mul_(b2).addcmul_(grad, grad, value=1 - b2)
    steps = opt_steps.index_select(0, slots).add_(1)
    opt_m.index_copy_(0, slots, m)
    opt_v.index_copy_(0, slots, v)
    opt_steps.index_copy_(0, slots, steps)
    t = steps.unsqueeze(1).float()
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    weight.index_add_(0, slots, -lr * m_hat / (v_hat.sqrt() + EPS))
