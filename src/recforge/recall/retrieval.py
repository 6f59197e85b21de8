"""Training of retrieval (matching) models on positive (user, item) pairs.

Losses, over a batch of B positive pairs and M extra negatives drawn from `negative_sampler`:
  inbatch          softmax of each user over the B positive items of the batch (+ the M negatives)
  sampled_softmax  softmax of each user over its own positive + the M negatives (no in-batch items)
  bpr              -log sigmoid(s(u, i+) - s(u, i-)), one uniform negative the user has not seen per pair
With `logq`, softmax logits are corrected by the log of how often each candidate enters the candidate set,
log(B * p_data(i) + M * p_sampler(i)) (Yi et al. 2019, mixed negatives as in Yang et al. 2020), so popular
items are not over-punished for appearing as negatives more often (on MovieLens-100k, turning it off
drops NDCG@10 from 0.25 to 0.08). A candidate equal to the row's own positive item (an "accidental
hit") is masked, and with `mask_seen` so is any of the user's other training positives (NDCG@10
0.279 -> 0.292 for graphsage). The model is abstracted as an `Encoder`; what the metric is and how it
is computed belongs to the caller (`evaluate`), which keeps this module free of the channels that use it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recforge.progress import track

log = logging.getLogger(__name__)

Encoder = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]
"""(users [B], candidates [C] whose first B are the users' positives) -> (user vectors [B, D], items [C, D])."""
MONITOR = r"^(recall|ndcg|mrr|hit|precision)@[1-9][0-9]*$"


class RetrievalTrainOptions(BaseModel):
    """Loss, negatives, optimizer and stopping of a retrieval model (channel options extend this)."""

    model_config = ConfigDict(extra="forbid")
    loss: Literal["inbatch", "sampled_softmax", "bpr"] = Field("inbatch", description="See recforge.recall.retrieval.")
    logq: bool = Field(True, description="Subtract log sampling probability from softmax logits (Yi et al. 2019).")
    num_negatives: int = Field(0, ge=0, description="Extra sampled negatives per batch, shared by its rows.")
    negative_sampler: Literal["uniform", "popularity"] = Field(
        "uniform", description="Distribution of the extra negatives: uniform or training item frequency."
    )
    mask_seen: bool = Field(
        True, description="Softmax: a candidate the user has among its training positives is not a negative."
    )
    temperature: float = Field(0.2, gt=0, description="Softmax logits are score / temperature.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 penalty.")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(1024, ge=2, description="Positive pairs per step.")
    patience: int | None = Field(3, ge=1, description="Stop after this many epochs without a better `monitor`.")
    monitor: str = Field("ndcg@10", pattern=MONITOR, description="Validation metric for early stopping.")
    threads: int | None = Field(None, ge=1, description="torch threads while training (default: unchanged).")
    seed: int | None = Field(None, description="Seed (default: the recall config's seed).")

    @model_validator(mode="after")
    def _negatives_needed(self) -> RetrievalTrainOptions:
        if self.loss == "sampled_softmax" and self.num_negatives == 0:
            raise ValueError("loss sampled_softmax needs num_negatives >= 1 (or use loss: inbatch)")
        return self

    @property
    def monitor_k(self) -> int:
        return int(self.monitor.split("@")[1])


@dataclass
class RetrievalResult:
    best: dict[str, float]  # validation metrics of the kept weights ({} without validation)
    best_epoch: int
    epochs: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class NegativeSampler:
    """Item codes drawn uniformly or by training frequency; `probs` is what logQ corrects by."""

    def __init__(self, counts: np.ndarray, kind: str, rng: np.random.Generator) -> None:
        n = len(counts)
        self.probs = np.full(n, 1.0 / n) if kind == "uniform" else counts / counts.sum()
        self.cumulative = np.cumsum(self.probs)
        self.rng = rng

    def sample(self, size: int) -> np.ndarray:
        draws = self.rng.random(size) * self.cumulative[-1]
        return np.minimum(np.searchsorted(self.cumulative, draws, side="right"), len(self.probs) - 1)


def softmax_logits(
    users: torch.Tensor,
    candidates: torch.Tensor,
    candidate_items: torch.Tensor,
    temperature: float,
    *,
    log_q: torch.Tensor | None = None,
    inbatch: bool = True,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, C] logits; row b's target is column b. Accidental hits (and other rows' positives when not
    `inbatch`, and where `exclude` [B, C] is True) are -inf; `log_q` [C] is subtracted from every row.

    >>> u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> logits = softmax_logits(u, u, torch.tensor([7, 7]), 1.0)
    >>> logits.tolist()   # the same item in both rows: neither row treats it as a negative
    [[1.0, -inf], [-inf, 1.0]]
    """
    n = users.shape[0]
    logits = users @ candidates.T / temperature
    if log_q is not None:
        logits = logits - log_q
    positives = candidate_items[:n]
    mask = candidate_items.unsqueeze(0) == positives.unsqueeze(1)
    if not inbatch:
        mask[:, :n] = True
    if exclude is not None:
        mask |= exclude
    mask[torch.arange(n), torch.arange(n)] = False
    return logits.masked_fill(mask, float("-inf"))


def candidate_log_q(
    codes: torch.Tensor, data_probs: torch.Tensor, sampler_probs: torch.Tensor, n_inbatch: int, n_negatives: int
) -> torch.Tensor:
    """float32 [C]: log of the expected number of times each candidate item is drawn into a batch's
    candidate set: n_inbatch positives drawn from the data, n_negatives from the sampler."""
    expected = n_inbatch * data_probs[codes] + n_negatives * sampler_probs[codes]
    return torch.log(expected.clamp_min(1e-12)).float()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class RetrievalTrainer:
    """Epochs of shuffled positive pairs, Adam, validation each epoch, early stop, best weights kept."""

    def __init__(
        self,
        model: nn.Module,
        encode: Encoder,
        options: RetrievalTrainOptions,
        *,
        n_items: int,
        seed: int,
        seen: sp.csr_matrix | None = None,
        progress: bool = True,
    ) -> None:
        self.model, self.encode, self.options = model, encode, options
        self.n_items, self.seed, self.progress = n_items, seed, progress
        self.seen = seen  # [n_users, n_items] training positives: never negatives for BPR, nor with mask_seen
        self.rng = np.random.default_rng(seed)

    def fit(
        self, users: np.ndarray, items: np.ndarray, evaluate: Callable[[], dict[str, float]] | None = None
    ) -> RetrievalResult:
        """Train on pairs (users[j], items[j]); `evaluate` returns validation metrics holding `monitor`."""
        opts = self.options
        torch.manual_seed(self.seed)
        counts = np.bincount(items, minlength=self.n_items).astype(np.float64)
        self.data_probs = torch.from_numpy(counts / counts.sum())
        self.sampler = NegativeSampler(counts, opts.negative_sampler, self.rng)
        self.sampler_probs = torch.from_numpy(self.sampler.probs)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        best: dict[str, float] = {}
        best_epoch, bad, history = 0, 0, []
        best_state: dict[str, torch.Tensor] | None = None
        started = time.perf_counter()
        with torch_threads(opts.threads):
            epoch = 0
            for epoch in range(1, opts.epochs + 1):
                self.model.train()
                order = self.rng.permutation(len(users))
                steps = range(0, len(order), opts.batch_size)
                loss_sum = 0.0
                for start in track(steps, f"epoch {epoch}", unit="steps", enabled=self.progress):
                    rows = order[start : start + opts.batch_size]
                    if len(rows) < 2:
                        continue
                    loss = self._loss(users[rows], items[rows])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss is {value} in epoch {epoch}; lower `lr`")
                    loss_sum += value * len(rows)
                row: dict[str, Any] = {"epoch": epoch, "loss": loss_sum / len(users)}
                if evaluate is not None:
                    self.model.eval()
                    with torch.no_grad():
                        metrics = evaluate()
                    row.update(metrics)
                    value = metrics[opts.monitor]
                    if not best or value > best[opts.monitor]:
                        best, best_epoch, bad = metrics, epoch, 0
                        best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                    else:
                        bad += 1
                history.append(row)
                log.info("retrieval epoch %s", {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
                if opts.patience is not None and bad >= opts.patience:
                    log.info("early stop after epoch %d: best %s at epoch %d", epoch, opts.monitor, best_epoch)
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return RetrievalResult(best, best_epoch or epoch, epoch, time.perf_counter() - started, history)

    def _loss(self, users: np.ndarray, positives: np.ndarray) -> torch.Tensor:
        opts = self.options
        if opts.loss == "bpr":
            negatives = self._unseen_negatives(users)
            user_vecs, vecs = self.encode(users, np.concatenate([positives, negatives]))
            n = len(users)
            pos = (user_vecs * vecs[:n]).sum(dim=1)
            neg = (user_vecs * vecs[n:]).sum(dim=1)
            return nn.functional.softplus(neg - pos).mean()
        candidates = np.concatenate([positives, self.sampler.sample(opts.num_negatives)])
        user_vecs, vecs = self.encode(users, candidates)
        codes = torch.from_numpy(candidates)
        log_q = None
        if opts.logq:
            inbatch = len(users) if opts.loss == "inbatch" else 0
            log_q = candidate_log_q(codes, self.data_probs, self.sampler_probs, inbatch, opts.num_negatives)
        exclude = None
        if opts.mask_seen and self.seen is not None:
            exclude = torch.from_numpy(self.seen[users][:, candidates].toarray() > 0)
        logits = softmax_logits(
            user_vecs, vecs, codes, opts.temperature, log_q=log_q, inbatch=opts.loss == "inbatch", exclude=exclude
        )
        return nn.functional.cross_entropy(logits, torch.arange(len(users)))

    def _unseen_negatives(self, users: np.ndarray, rounds: int = 5) -> np.ndarray:
        """One uniform item per user, redrawn (up to `rounds` times) when the user has it in training."""
        negatives = self.rng.integers(0, self.n_items, len(users))
        if self.seen is None:
            return negatives
        for _ in range(rounds):
            hit = np.asarray(self.seen[users, negatives]).ravel() > 0
            if not hit.any():
                break
            negatives[hit] = self.rng.integers(0, self.n_items, int(hit.sum()))
        return negatives
