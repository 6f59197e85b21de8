"""The `online:` block: how the streaming trainer checkpoints, publishes, gates and watches for drift."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict
from recforge.config.gate import GateConfig


class DriftSettings(Strict):
    """Drift monitor over the stream (PSI per column, label rate, progressive AUC); see recforge.online.drift."""

    enabled: bool = True
    columns: list[str] | None = Field(
        None, description="Raw columns to watch (default: feature inputs except the user and item keys)."
    )
    window: int = Field(5_000, ge=100, description="Rows per judged window.")
    reference_rows: int | None = Field(
        None, ge=100, description="Rows the reference is built from (default: one window, the first after start)."
    )
    psi_threshold: float = Field(0.2, gt=0)
    label_rate_change: float = Field(0.5, gt=0, description="Relative move of the positive rate that alarms.")
    auc_drop: float = Field(0.05, gt=0, description="Progressive-AUC drop vs the reference window that alarms.")
    recover_windows: int = Field(2, ge=1, description="Clean windows in a row that lower the alarm by themselves.")


class OnlineConfig(Strict):
    """Streaming training: read, train, checkpoint with offsets, publish through the gate every T s / N rows."""

    batch_size: int | None = Field(None, ge=1, description="Rows per read and step (default: train.batch_size).")
    read_timeout_ms: int = Field(500, ge=1, description="Wait this long for the first row of a read.")
    fit_rows: int = Field(20_000, ge=1, description="From scratch: features are fitted on the first N rows.")
    checkpoint_every_rows: int = Field(
        20_000, ge=1, description="Checkpoint (model, optimizers, stream position) and ack every N rows."
    )
    checkpoint_every_s: float = Field(10.0, gt=0, description="... or every T seconds, whichever comes first.")
    publish_every_s: float | None = Field(30.0, gt=0, description="Publish a candidate every T seconds.")
    publish_every_rows: int | None = Field(None, ge=1, description="... or every N rows trained.")
    gate_rows: int = Field(
        2_000, ge=50, description="A candidate is judged on the next N rows before it trains on them."
    )
    holdout: str | None = Field(None, description="A fixed held-out file for the gate instead of the next rows.")
    full_every: int = Field(10, ge=1, description="Publish a full bundle after this many deltas in a row.")
    gate: GateConfig = GateConfig()
    drift: DriftSettings = DriftSettings()


class FtrlConfig(Strict):
    """`train.ftrl`: FTRL-Proximal hyper-parameters of the `ftrl` trainer (see recforge.train.ftrl)."""

    alpha: float = Field(0.05, gt=0, description="Per-coordinate learning-rate scale.")
    beta: float = Field(1.0, ge=0)
    l1: float = Field(1.0, ge=0, description="Weights with |z| <= l1 are exactly zero (sparsity).")
    l2: float = Field(1.0, ge=0)
    mode: Literal["exact", "batch"] = Field(
        "exact", description="exact: per sample, in order (numba); batch: one vectorized step per mini-batch."
    )
