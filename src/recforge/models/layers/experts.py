"""Blocks of multi-task models: expert groups, softmax gates over experts, and per-task towers.

Shapes: B = batch rows, E = experts, H = expert output width, T = tasks.
"""

from __future__ import annotations

import torch
from torch import nn

from recforge.models.layers.mlp import MLP, MLPConfig


class Experts(nn.Module):
    """`n` MLPs over the same input: [B, in_dim] -> [B, n, H]."""

    def __init__(self, in_dim: int, n: int, config: MLPConfig) -> None:
        super().__init__()
        self.experts = nn.ModuleList(MLP(in_dim, config) for _ in range(n))
        self.output_dim: int = config.hidden[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([expert(x) for expert in self.experts], dim=1)


class Gate(nn.Module):
    """Softmax over experts from the gate input, then their weighted sum: ([B, in_dim], [B, E, H]) -> [B, H]."""

    def __init__(self, in_dim: int, n_experts: int) -> None:
        super().__init__()
        self.logits = nn.Linear(in_dim, n_experts)

    def forward(self, x: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits(x), dim=1)  # [B, E]
        return torch.bmm(weights.unsqueeze(1), experts).squeeze(1)


class Extraction(nn.Module):
    """One PLE level (CGC): task-specific and shared experts; task t's gate mixes its own and the shared ones.

    Input: one [B, in] tensor per task plus the shared one (T + 1); output: the same, each [B, H]. The shared
    output (a gate over every expert) feeds the next level; the last level needs none (`shared_out=False`).
    """

    def __init__(
        self, in_dim: int, n_tasks: int, specific: int, shared: int, config: MLPConfig, shared_out: bool = True
    ) -> None:
        super().__init__()
        self.specific = nn.ModuleList(Experts(in_dim, specific, config) for _ in range(n_tasks))
        self.shared = Experts(in_dim, shared, config)
        self.gates = nn.ModuleList(Gate(in_dim, specific + shared) for _ in range(n_tasks))
        self.shared_gate = Gate(in_dim, n_tasks * specific + shared) if shared_out else None
        self.output_dim: int = self.shared.output_dim

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        shared = self.shared(inputs[-1])  # [B, S, H]
        own = [experts(x) for experts, x in zip(self.specific, inputs[:-1], strict=True)]  # T x [B, K, H]
        out = [
            gate(x, torch.cat([mine, shared], dim=1)) for gate, x, mine in zip(self.gates, inputs, own, strict=False)
        ]
        if self.shared_gate is not None:
            out.append(self.shared_gate(inputs[-1], torch.cat([*own, shared], dim=1)))
        return out


class Towers(nn.Module):
    """One MLP with a 1-wide head per task: T x [B, in_dim] (or one shared [B, in_dim]) -> logits [B, T]."""

    def __init__(self, in_dim: int, n_tasks: int, config: MLPConfig) -> None:
        super().__init__()
        self.towers = nn.ModuleList(MLP(in_dim, config, out_dim=1) for _ in range(n_tasks))

    def forward(self, inputs: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        per_task = inputs if isinstance(inputs, list) else [inputs] * len(self.towers)
        return torch.cat([tower(x) for tower, x in zip(self.towers, per_task, strict=True)], dim=1)
