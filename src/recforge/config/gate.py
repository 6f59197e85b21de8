"""The `gate:` options: what a new model version must show on held-out data before it is published."""

from __future__ import annotations

from pydantic import Field

from recforge.config.features import Strict


class GateConfig(Strict):
    """Absolute floors, the largest allowed drop against the version being served, sanity checks."""

    min_auc: float | None = Field(None, ge=0, le=1, description="Reject below this held-out AUC.")
    max_logloss: float | None = Field(None, gt=0, description="Reject above this held-out logloss.")
    max_auc_drop: float | None = Field(
        0.005, ge=0, description="Reject when AUC is more than this below the serving version's on the same rows."
    )
    max_logloss_rise: float | None = Field(None, ge=0, description="Same for logloss (None: not checked).")
    min_score_std: float = Field(1e-4, ge=0, description="Reject near-constant scores (a collapsed model).")
    keep: int = Field(10, ge=1, description="Published versions kept in the stream (the served one always is).")
