"""The search-space YAML of `recforge tune`: which dotted config paths to search, the objective, pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, model_validator

from recforge.config.features import Strict
from recforge.config.loader import validate_block
from recforge.errors import ConfigError


class FloatParam(Strict):
    """A float in [low, high], log-uniform when `log` (learning rates, weight decay)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if self.low > self.high or (self.log and self.low <= 0):
            raise ValueError(f"needs low <= high (and low > 0 with log); got low={self.low}, high={self.high}")
        return self


class IntParam(Strict):
    """An int in [low, high] (embedding dims, hash buckets, epochs)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low > self.high or (self.log and self.low <= 0):
            raise ValueError(f"needs low <= high (and low > 0 with log); got low={self.low}, high={self.high}")
        return self


class CategoricalParam(Strict):
    """One of `choices`; a choice may be any YAML value (a list of hidden units, null, a model name)."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class FeatureSwitch(Strict):
    """Key `features.NAME`: the trial keeps or drops that feature (and its eval group key stays valid)."""

    type: Literal["feature"]


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam | FeatureSwitch, Field(discriminator="type")]


class ObjectiveConfig(Strict):
    """What a trial is scored by: one metric of `eval.metrics` on the VALID split (never test)."""

    metric: str = Field("auc", description="auc, logloss, gauc@COLUMN: must be listed in eval.metrics.")


class PrunerConfig(Strict):
    """Median pruning on the metric reported at every evaluation (each epoch, or every N steps)."""

    kind: Literal["median", "none"] = "median"
    startup_trials: int = Field(4, ge=0, description="Finished trials before any pruning.")
    warmup_evals: int = Field(2, ge=0, description="Evaluations of a trial before it can be pruned.")


class SamplerConfig(Strict):
    kind: Literal["tpe", "random"] = "tpe"
    seed: int | None = 0
    startup_trials: int = Field(8, ge=1, description="Random trials before TPE models the space.")


class TuneSpace(Strict):
    """`params` maps a dotted config path (as `--set` takes it) to its search range."""

    params: dict[str, ParamSpec] = Field(min_length=1)
    objective: ObjectiveConfig = ObjectiveConfig()
    pruner: PrunerConfig = PrunerConfig()
    sampler: SamplerConfig = SamplerConfig()

    @model_validator(mode="after")
    def _switch_paths(self) -> TuneSpace:
        for path, spec in self.params.items():
            is_switch_path = path.startswith("features.") and path.count(".") == 1 and "[" not in path
            if isinstance(spec, FeatureSwitch) != is_switch_path:
                raise ValueError(
                    f"{path!r}: `type: feature` goes with a key `features.NAME` (and only there); "
                    "address a feature's fields by index, e.g. features[2].dim"
                )
        return self


def load_space(path: str | Path) -> TuneSpace:
    """Read and validate a search-space YAML; every problem is reported with its path."""
    file = Path(path)
    if not file.exists():
        raise ConfigError("", f"search space {file} does not exist", fix="give the path of a search-space YAML")
    try:
        tree = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("", f"is not valid YAML: {exc}", file=str(file)) from exc
    return validate_block(TuneSpace, tree, str(file))
