"""The `ftrl` trainer family: FTRL-Proximal fits the weights of the `lr` model, one coordinate per weight.

The lr model scores logit = bias + sum over fields of a dim-1 weight: a row of its fused table for an
id field (hashed with `hash_buckets`, a vocabulary or numeric buckets), the masked (weighted) sum or
mean of rows for a bag, x_d times a weight for a dense field. Each of those weights is one FTRL
coordinate: table rows first, then dense fields, then the bias. `LinearCoordinates.encode` turns a
Batch into the idx/val rows FTRL learns from, `export` writes the weights into the lr model, so the
version it publishes is an ordinary bundle that every scoring path (serving, `recforge predict`,
`stream predict`) reads. The z/n accumulators are trainer state (a warm start needs them), kept in the
work or output directory, never in the bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import is_multitask
from recforge.errors import BundleError, ConfigError
from recforge.models.rank.lr import LogisticRegression
from recforge.train.families import TRAINERS
from recforge.train.ftrl import FTRLProximal
from recforge.train.metrics import parse_metrics
from recforge.train.trainer import TrainResult, evaluate

log = logging.getLogger(__name__)
STATE = "ftrl-state.safetensors"


@dataclass(frozen=True)
class LinearCoordinates:
    """Where each weight of an lr model sits among the FTRL coordinates."""

    id_offsets: np.ndarray  # [F_id] row offset of each id field's table in the fused table
    bags: tuple[tuple[str, int, bool], ...]  # (bag field, its table's row offset, mean pooling)
    rows: int  # rows of the fused table
    dense: int  # dense fields

    @property
    def size(self) -> int:
        return self.rows + self.dense + 1

    @classmethod
    def of(cls, model: LogisticRegression) -> LinearCoordinates:
        emb = model.weights
        if not emb.fused:
            odd = ", ".join(emb.tables)
            raise ConfigError(
                f"features ({odd})",
                "the ftrl trainer learns static tables only; these use another storage kind",
                fix="drop `storage:` from them (hash with `hash_buckets` instead)",
            )
        offsets = emb.table_offsets
        schema = emb.schema
        return cls(
            id_offsets=np.array([offsets[f.table or ""] for f in schema.id_fields], dtype=np.int64),
            bags=tuple((f.name, offsets[f.table or ""], f.pooling == "mean") for f in schema.bag_fields),
            rows=int(emb.weight.shape[0]) if offsets else 0,
            dense=len(schema.dense_fields),
        )

    def encode(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """idx int64 [B, K] and val float64 [B, K] with sum_k w[idx] * val == the lr model's logit."""
        b = batch.size
        idx = [batch.ids.numpy() + self.id_offsets]
        val = [np.ones(idx[0].shape)]
        for name, offset, mean in self.bags:
            bag = batch.bags[name]
            values = bag.values.numpy()
            weight = (values != 0).astype(np.float64)
            if bag.weights is not None:
                weight *= bag.weights.numpy()
            if mean:
                weight /= np.maximum((values != 0).sum(axis=1, keepdims=True), 1)
            idx.append(values + offset)
            val.append(weight)
        if self.dense:
            idx.append(np.broadcast_to(self.rows + np.arange(self.dense), (b, self.dense)))
            val.append(batch.dense.numpy().astype(np.float64))
        idx.append(np.full((b, 1), self.size - 1, dtype=np.int64))
        val.append(np.ones((b, 1)))
        return np.concatenate(idx, axis=1), np.concatenate(val, axis=1)

    def export(self, weights: np.ndarray, model: LogisticRegression) -> None:
        """Write FTRL's weights into the lr model's parameters (float32, as every bundle holds them)."""
        w = torch.from_numpy(weights.astype(np.float32))
        with torch.no_grad():
            if self.rows:
                model.weights.weight[:, 0] = w[: self.rows]
            model.weights.dense_vectors[:, 0] = w[self.rows : self.rows + self.dense]
            model.bias[0] = w[-1]


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

    def learn(self, batch: Batch) -> np.ndarray:
        """Predict, then learn from, one batch; the predictions [B] are made before learning (progressive)."""
        idx, val = self.coords.encode(batch)
        return self.ftrl.learn(idx, val, batch.labels[self.label].numpy())

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
