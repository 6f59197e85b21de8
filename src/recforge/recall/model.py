"""RecallModel: fitted channels over one vocab, merged into one candidate list; saved as the recall bundle.

Bundle layout (no pickle anywhere):
  recall.json                 format version, config, channel names, counts
  vocab/{users,items}.parquet original ids by code
  history.{safetensors,json}  training interactions (the default history of known users) and popularity
  channels/<name>/...         each channel's own state
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recforge.config.recall import RecallConfig
from recforge.errors import BundleError
from recforge.progress import stage
from recforge.recall.channels.base import Candidates, FitContext, Query, RecallChannel, build_channel
from recforge.recall.interactions import Interactions, Vocab
from recforge.recall.merge import MergedCandidates, merge_candidates
from recforge.state_io import load_state, save_state

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class RecallModel:
    config: RecallConfig
    vocab: Vocab
    channels: dict[str, RecallChannel]
    history: sp.csr_matrix
    popular: np.ndarray  # item codes, most popular first
    fit_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def fit(cfg: RecallConfig, train: Interactions, context: FitContext) -> RecallModel:
        """Fit every configured channel on `train` (in config order), timing each."""
        channels: dict[str, RecallChannel] = {}
        seconds: dict[str, float] = {}
        built = [build_channel(c, i) for i, c in enumerate(cfg.channels)]  # all options checked before any fit
        for channel in built:
            start = time.perf_counter()
            with stage(f"recall channel {channel.name}", context.progress):
                channel.fit(train, context)
            seconds[channel.name] = round(time.perf_counter() - start, 3)
            log.info("recall channel %s fitted in %.1f s", channel.name, seconds[channel.name])
            channels[channel.name] = channel
        popular = np.lexsort((np.arange(train.n_items), -train.item_counts()))
        return RecallModel(cfg, context.vocab, channels, train.binary(), popular.astype(np.int64), seconds)

    def query(self, users: np.ndarray, exclude: sp.csr_matrix | None = None) -> Query:
        """A query for user codes with their training history (cold users, code -1, have none)."""
        known = np.clip(users, 0, None)
        history = self.history[known].tocsr()
        history = sp.diags((users >= 0).astype(np.float32)) @ history
        return Query(users, history.tocsr(), exclude)

    def channel_candidates(self, query: Query, depth: int = 0) -> dict[str, Candidates]:
        """Each channel's list, at least `depth` long (evaluation) and at least its quota (merge)."""
        out = {}
        for cfg in self.config.channels:
            out[cfg.name] = self.channels[cfg.name].recommend(query, max(cfg.quota, depth))
        return out

    def merge(self, query: Query, lists: dict[str, Candidates], k: int | None = None) -> MergedCandidates:
        merge_cfg = self.config.merge
        quota = [(c.name, _head(lists[c.name], c.quota), c.weight) for c in self.config.channels]
        return merge_candidates(
            quota,
            k or merge_cfg.k,
            strategy=merge_cfg.strategy,
            rrf_k=merge_cfg.rrf_k,
            popular=self.popular if merge_cfg.fallback == "popular" else None,
            exclude=query.exclude,
        )

    def recall(self, query: Query, k: int | None = None) -> MergedCandidates:
        """The merged, deduplicated candidate list of every channel for each query user."""
        return self.merge(query, self.channel_candidates(query), k)

    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.vocab.save(out / "vocab")
        h = self.history.tocsr()
        save_state(
            {
                "indptr": torch.from_numpy(h.indptr.astype(np.int64)),
                "indices": torch.from_numpy(h.indices.astype(np.int64)),
                "popular": torch.from_numpy(self.popular),
                "shape": list(h.shape),
            },
            out / "history",
        )
        for name, channel in self.channels.items():
            channel.save(out / "channels" / name)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "channels": list(self.channels),
            "fit_seconds": self.fit_seconds,
            "counts": self.counts,
        }
        (out / "recall.json").write_text(json.dumps(meta, indent=1))
        return out

    @staticmethod
    def load(directory: str | Path) -> RecallModel:
        base = Path(directory)
        if not (base / "recall.json").exists():
            raise BundleError(f"{base} is not a recall bundle (no recall.json)")
        meta: dict[str, Any] = json.loads((base / "recall.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{base}: recall bundle format {meta.get('format_version')}, expected {FORMAT_VERSION}")
        cfg = RecallConfig.model_validate(meta["config"])
        state = load_state(base / "history")
        indptr, indices = state["indptr"].numpy(), state["indices"].numpy()
        history = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=tuple(state["shape"]))
        channels = {}
        for i, c in enumerate(cfg.channels):
            channel = build_channel(c, i)
            channel.load(base / "channels" / c.name)
            channels[c.name] = channel
        return RecallModel(
            cfg,
            Vocab.load(base / "vocab"),
            channels,
            history,
            state["popular"].numpy(),
            meta["fit_seconds"],
            meta["counts"],
        )


def _head(c: Candidates, n: int) -> Candidates:
    return Candidates(c.items[:, :n], c.scores[:, :n])
