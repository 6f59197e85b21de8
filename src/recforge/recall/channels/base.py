"""The recall-channel contract, its registry, and the masked top-k shared by every score-based channel.

A channel fits on training interactions and answers a `Query`: user codes (-1 = unknown user), each
user's history (the items whose neighbours or embeddings describe them) and the items to exclude.
History is passed in rather than remembered, so the online service can hand over fresh behavior.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from recforge.config.features import FeatureConfig
from recforge.config.loader import format_validation_error
from recforge.config.recall import ChannelConfig
from recforge.recall.interactions import Interactions, Vocab
from recforge.registry import Registry
from recforge.state_io import load_state, save_state


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Query:
    """Users to recall for: codes (-1 = cold), history [U, n_items] and exclude [U, n_items] CSR rows."""

    users: np.ndarray
    history: sp.csr_matrix
    exclude: sp.csr_matrix | None = None

    def __len__(self) -> int:
        return len(self.users)

    def rows(self, start: int, stop: int) -> Query:
        return Query(
            self.users[start:stop],
            self.history[start:stop],
            None if self.exclude is None else self.exclude[start:stop],
        )


@dataclass(frozen=True)
class Candidates:
    """Top-k item codes per user (-1 pads short lists) with their scores, best first."""

    items: np.ndarray  # int64 [U, k]
    scores: np.ndarray  # float32 [U, k], -inf where items is -1

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))


@dataclass
class FitContext:
    """What a channel may use besides the training interactions (two-tower and graph models need more)."""

    vocab: Vocab
    valid: Interactions | None = None
    users: pa.Table | None = None  # user side table, keyed by `user_key`
    items: pa.Table | None = None  # item side table, keyed by `item_key`
    user_key: str = "user_id"
    item_key: str = "item_id"
    features: Sequence[FeatureConfig] = ()
    embedding_dim: int = 16
    seed: int = 2020
    progress: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


class RecallChannel(ABC):
    """One source of candidates. Subclasses set `options_class` and implement fit / recommend / state."""

    options_class: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, name: str, options: BaseModel) -> None:
        self.name = name
        self.options = options
        self.n_items = 0

    @abstractmethod
    def fit(self, train: Interactions, context: FitContext) -> None:
        """Learn from `train`; `context` carries the vocab, side tables and valid split."""

    @abstractmethod
    def recommend(self, query: Query, k: int) -> Candidates:
        """Top-k items per query user, never an excluded one."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything `load_state` needs: tensors and plain values (saved as safetensors + JSON)."""

    @abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned."""

    def save(self, directory: str | Path) -> None:
        save_state({"n_items": self.n_items, **self.state()}, Path(directory) / "state")

    def load(self, directory: str | Path) -> None:
        state = load_state(Path(directory) / "state")
        self.n_items = int(state.pop("n_items"))
        self.load_state(state)


class ScoringChannel(RecallChannel):
    """A channel that can score the whole catalog for a block of users; top-k and masking come from here."""

    @abstractmethod
    def scores(self, query: Query) -> np.ndarray:
        """float32 [len(query), n_items]; -inf marks items the channel cannot recall for that user."""

    def recommend(self, query: Query, k: int) -> Candidates:
        return masked_topk(self.scores(query), k, query.exclude)


def masked_topk(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> Candidates:
    """Best k per row after setting excluded items to -inf; rows with fewer finite scores are -1 padded."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None and exclude.nnz:
        exclude = exclude.tocsr()
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    k = min(k, scores.shape[1])
    if k == 0:
        return Candidates(np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0), np.float32))
    top = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    )
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)  # score desc, then item code asc: deterministic ties
    items = np.take_along_axis(top, order, axis=1).astype(np.int64)
    best = np.take_along_axis(top_scores, order, axis=1)
    items[~np.isfinite(best)] = -1
    return Candidates(items, best)


def topk_tensor(scores: torch.Tensor, k: int, exclude: sp.csr_matrix | None) -> Candidates:
    """`masked_topk` for a torch score block (embedding channels score with a matmul)."""
    return masked_topk(scores.detach().float().cpu().numpy(), k, exclude)


CHANNELS: Registry[type[RecallChannel]] = Registry("recall channel")


def register_channel(name: str) -> Callable[[type[RecallChannel]], type[RecallChannel]]:
    """`@register_channel("ease")` on a RecallChannel subclass with an `options_class`."""
    return CHANNELS.register(name)


def channel_options(cfg: ChannelConfig, index: int) -> BaseModel:
    """The channel block minus name/type/quota/weight, validated by the channel's options class."""
    where = f"recall.channels[{index}]"
    cls = CHANNELS.get(cfg.kind, yaml_path=f"{where}.type")
    try:
        return cls.options_class.model_validate(dict(cfg.model_extra or {}))
    except ValidationError as err:
        label = cfg.kind if cfg.name == cfg.kind else f"{cfg.name} ({cfg.kind})"
        raise format_validation_error(err, model=cls.options_class, prefix=where, title=f"channel {label}") from None


def build_channel(cfg: ChannelConfig, index: int = 0) -> RecallChannel:
    return CHANNELS.get(cfg.kind)(cfg.name, channel_options(cfg, index))
