"""GBDT+LR: LightGBM trees turn a row into one leaf per tree; a logistic regression weighs the leaves.

The trees are fitted by `recforge.train` (trainer family `gbdt_lr`), not by SGD; this module only scores:
logit = bias + sum_t w[leaf_t(x)], where leaf_t(x) is the global index of the leaf x reaches in tree t.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.models.pmml import forest_lr_pmml
from recforge.models.registry import register_model
from recforge.models.trees import Forest, TreeInputs, importance_csv
from recforge.schema import InputSchema

FOREST_FILE = "gbdt.txt"


class GBDTLRConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trees: int = Field(200, ge=1, description="Boosting rounds (fewer when early stopping on valid).")
    num_leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    min_data_in_leaf: int = Field(20, ge=1)
    feature_fraction: float = Field(1.0, gt=0, le=1)
    early_stop_rounds: int | None = Field(20, ge=1, description="Stop boosting when valid AUC stalls this long.")
    lightgbm: dict[str, Any] = Field(default_factory=dict, description="More LightGBM parameters, passed as is.")
    l2: float = Field(100.0, ge=0, description="L2 on the leaf weights of the LR (sum loss + l2/2 |w|^2).")
    lr_iters: int = Field(100, ge=1, description="L-BFGS iterations fitting the LR over leaves.")
    max_bag_values: int = Field(64, ge=1, description="Largest tag/sequence vocab read as multi-hot columns.")


@register_model("gbdt_lr", config=GBDTLRConfig, trainer="gbdt_lr")
class GBDTLR(nn.Module):
    """logit = bias + sum_t w[leaf_t(x)]; an untrained model (no trees) returns the bias."""

    def __init__(self, schema: InputSchema, config: GBDTLRConfig) -> None:
        super().__init__()
        self.config = config
        self.inputs = TreeInputs.of(schema, config.max_bag_values)
        self.forest: Forest | None = None
        self.weight = nn.Parameter(torch.zeros(0))  # [n_leaves]
        self.bias = nn.Parameter(torch.zeros(1))

    def set_forest(self, forest: Forest) -> None:
        """Adopt trees; the leaf weights start at LightGBM's own leaf outputs (the GBDT's prediction)."""
        self.forest = forest
        self.weight = nn.Parameter(torch.from_numpy(forest.leaf_values()).float())

    def leaves(self, batch: Batch) -> torch.Tensor:
        """int64 [B, T] global leaf indices."""
        if self.forest is None:
            return torch.zeros((batch.size, 0), dtype=torch.int64)
        return torch.from_numpy(self.forest.leaves(self.inputs.matrix(batch)))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits [B], summed in float64 so the PMML evaluator reproduces them to ~1e-12."""
        summed = self.weight.double()[self.leaves(batch)].sum(dim=1)
        return (summed + self.bias.double()).float()

    def artifacts(self) -> dict[str, str]:
        if self.forest is None:
            return {}
        weights = self.weight.detach().double().numpy()
        pmml = forest_lr_pmml(self.forest, self.inputs, weights, float(self.bias.detach()), "gbdt_lr")
        return {
            FOREST_FILE: self.forest.text,
            "model.pmml": pmml,
            "importance.csv": importance_csv(self.forest.importance(self.inputs)),
        }

    def load_artifacts(self, texts: dict[str, str]) -> None:
        if FOREST_FILE in texts:
            self.set_forest(Forest(texts[FOREST_FILE]))

    def importance(self) -> list[dict[str, Any]]:
        """Gain and split count per feature, largest gain first (empty before training)."""
        return self.forest.importance(self.inputs) if self.forest is not None else []
