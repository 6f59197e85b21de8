"""The `ftrl` trainer family: FTRL-Proximal fits the weights of the `lr` model, one coordinate per weight.

The lr model scores logit = bias + sum over fields of a dim-1 weight: a row of its fused table for an
id field (hashed with `hash_buckets`, a vocabulary or numeric buckets), the masked (weighted) sum or
mean of rows for a bag, x_d times a weight for a dense field. Each of those weights is one FTRL
coordinate: table rows first, then dense fields, then the bias (`train.linear_coordinates`: `encode` turns a
Batch into the idx/val rows FTRL learns from, `export` writes the weights into the lr model). `learn` takes
a Batch (the pipeline's loaders transform the files); `learn_table` takes raw Arrow rows (a stream) and lets
the FTRL kernel hash and bucketize the ids itself (`train.ftrl_raw`), to the same weights. The
version it publishes is an ordinary bundle that every scoring path (serving, `recforge predict`,
`stream predict`) reads. The z/n accumulators are trainer state (a warm start needs them), kept in the
work or output directory, never in the bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
from safetensors.numpy import load_file, save_file
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import is_multitask
from recforge.errors import BundleError, ConfigError
from recforge.features import FeatureSet, TransformReport
from recforge.models.rank.lr import LogisticRegression
from recforge.train.families import TRAINERS
from recforge.train.ftrl import FTRLProximal
from recforge.train.ftrl_raw import RawPlan
from recforge.train.linear_coordinates import LinearCoordinates
from recforge.train.metrics import parse_metrics
from recforge.train.trainer import TrainResult, evaluate

log = logging.getLogger(__name__)
STATE = "ftrl-state.safetensors"


@TRAINERS.register("ftrl")
class FtrlTrainer:
    """FTRL-Proximal over an lr model: `learn` one batch at a time (streams), or `fit` epochs over a loader."""

    @staticmethod
    def has_checkpoint(out_dir: Path) -> bool:
        """The z / n state `save` wrote into the run directory."""
        return (Path(out_dir) / STATE).is_file()

    def __init__(self, model: nn.Module, cfg: PipelineConfig, out_dir: Path) -> None:
        if not isinstance(model, LogisticRegression):
            raise ConfigError(
                "train.trainer", f"ftrl fits the lr model, not {cfg.model.name!r}", fix="set `model: {name: lr}`"
            )
        if is_multitask(cfg) or cfg.data.weight is not None:
            raise ConfigError("train.trainer", "ftrl learns one 0/1 label without sample weights", fix="drop them")
        if cfg.train.epochs == "auto":
            raise ConfigError("train.epochs", "ftrl has no early stop to end `auto`", fix="give a number, e.g. 1")
        self.model, self.cfg, self.out_dir = model, cfg, Path(out_dir)
        self.label = cfg.data.label
        self.coords = LinearCoordinates.of(model)
        c = cfg.train.ftrl
        self.ftrl = FTRLProximal(self.coords.size, alpha=c.alpha, beta=c.beta, l1=c.l1, l2=c.l2, mode=c.mode)
        self._raw: RawPlan | None = None

    def learn(self, batch: Batch) -> np.ndarray:
        """Predict, then learn from, one batch; the predictions [B] are made before learning (progressive)."""
        idx, val = self.coords.encode(batch)
        return self.ftrl.learn(idx, val, batch.labels[self.label].numpy())

    def learn_table(
        self,
        table: pa.Table | pa.RecordBatch,
        features: FeatureSet,
        *,
        source: str = "input",
        report: TransformReport | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`learn(features.transform(table))` in one kernel pass over the raw columns: labels [B], predictions [B].

        The same weights and predictions as transform + learn; values mapped to row 0 are counted in `report`."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self._raw is None or self._raw.features is not features:
            self._raw = RawPlan(features, self.coords, self.label)
        y = self._raw.labels(table, source)
        slots, cols = self._raw.inputs(table, source, report if report is not None else TransformReport())
        return y, self.ftrl.learn_columns(slots, cols, y)

    def predict(self, batch: Batch) -> np.ndarray:
        """Click probabilities [B] with the current weights (no learning)."""
        return self.ftrl.predict(*self.coords.encode(batch))

    def export(self) -> LogisticRegression:
        """The lr model holding the current weights (in eval mode)."""
        self.coords.export(self.ftrl.weights(), self.model)
        self.model.eval()
        return self.model

    def save(self, directory: Path) -> None:
        """z, n and the sample count as safetensors (no pickle): what `load` continues from."""
        save_file(self.ftrl.state(), str(Path(directory) / STATE))

    def load(self, directory: Path) -> None:
        file = Path(directory) / STATE
        if not file.is_file():
            raise BundleError(f"{file} is missing: no FTRL state to continue from")
        self.ftrl.load_state(load_file(str(file)), where=str(file))

    def fit(self, train: Iterable[Batch], valid: Iterable[Batch] | None, resume: bool = False) -> TrainResult:
        if resume:
            self.load(self.out_dir)
        started, steps, history = time.perf_counter(), 0, []
        specs = parse_metrics(self.cfg.eval.metrics)
        best: dict[str, float] = {}
        for epoch in range(1, int(self.cfg.train.epochs) + 1):
            for batch in train:
                self.learn(batch)
                steps += 1
            best = evaluate(self.export(), valid, specs, self.label) if valid is not None else {}
            history.append({"epoch": epoch, "step": steps, **{f"valid_{k}": v for k, v in best.items()}})
            log.info("ftrl epoch %d: %d rows learned, valid %s", epoch, self.ftrl.n_learned, best)
        self.save(self.out_dir)
        rate = self.ftrl.n_learned / max(time.perf_counter() - started, 1e-9)
        return TrainResult(best, steps, steps, int(self.cfg.train.epochs), rate, history)
