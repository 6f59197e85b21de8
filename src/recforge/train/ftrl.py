"""FTRL-Proximal logistic regression over sparse coordinates (McMahan et al., KDD 2013).

Per coordinate i, with accumulators z_i and n_i (both start at 0):

    w_i   = 0                                                    if |z_i| <= l1
          = -(z_i - sign(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)   otherwise
    p     = sigmoid(sum_i w_i x_i)        (the logit is clipped to [-35, 35])
    g_i   = (p - y) x_i
    sigma = (sqrt(n_i + g_i^2) - sqrt(n_i)) / alpha
    z_i  += g_i - sigma w_i ;   n_i += g_i^2

A batch is two dense arrays, idx int64 [B, F] (coordinates) and val float64 [B, F] (their values);
`recforge.train.ftrl_lr` turns an `lr` model's Batch into them, so FTRL learns the lr model's weights.

`mode="exact"` (default) runs this one sample at a time, in stream order, in the numba kernel of
`recforge.train.ftrl_kernel` (which can also hash and bucketize raw columns on the way): the
result equals per-sample FTRL. Within one row the weights are computed once, before that row's
updates, so two fields on one coordinate update it twice with the same w_i (as River and the
paper's pseudo-code do).

`mode="batch"` is vectorized NumPy per mini-batch: predict the whole batch with the current weights,
sum each coordinate's gradients over the batch, G_i = sum_rows g_i, then apply one FTRL step per
coordinate with G_i. So every row of a batch is scored with weights that have not yet seen the
earlier rows of that batch, and n_i grows by G_i^2 rather than by the sum of per-row g_i^2. With
batches of one row (and no coordinate twice in a row) it equals `exact`.

`learn` returns each row's prediction made before the model learns from that row (for `batch`,
before it learns from that batch): progressive validation.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from recforge.errors import BundleError, ConfigError, DataError
from recforge.train.ftrl_kernel import LOGIT_CLIP, Columns, Slots, learn_exact, materialize

Mode = Literal["exact", "batch"]


class FTRLProximal:
    """FTRL-Proximal state over `size` coordinates: two float64 arrays `z` and `n`; weights derive from them.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ids = rng.integers(0, 50, 20_000)
    >>> clicks = (rng.random(20_000) < np.where(ids % 2 == 0, 0.6, 0.1)).astype(np.float64)
    >>> model = FTRLProximal(51, alpha=0.1, l1=0.5)
    >>> idx = np.stack([ids, np.full_like(ids, 50)], axis=1)   # the item's coordinate and a bias coordinate
    >>> _ = model.learn(idx, np.ones(idx.shape), clicks)
    >>> p = model.predict(np.array([[2, 50], [3, 50]]), np.ones((2, 2)))
    >>> bool(p[0] > 0.5 > 0.2 > p[1])
    True
    """

    def __init__(
        self,
        size: int,
        *,
        alpha: float = 0.05,
        beta: float = 1.0,
        l1: float = 1.0,
        l2: float = 1.0,
        mode: Mode = "exact",
    ) -> None:
        for name, value in (("alpha", alpha), ("beta", beta), ("l1", l1), ("l2", l2)):
            if not (math.isfinite(value) and value >= 0) or (name == "alpha" and value == 0):
                fix = "> 0" if name == "alpha" else ">= 0"
                raise ConfigError(f"train.ftrl.{name}", f"must be a finite number {fix}, got {value}")
        if mode not in ("exact", "batch"):
            raise ConfigError("train.ftrl.mode", f"must be 'exact' or 'batch', got {mode!r}")
        self.size = int(size)
        self.alpha, self.beta, self.l1, self.l2 = float(alpha), float(beta), float(l1), float(l2)
        self.mode = mode
        self.z = np.zeros(self.size, dtype=np.float64)
        self.n = np.zeros(self.size, dtype=np.float64)
        self.n_learned = 0

    def weights_at(self, idx: np.ndarray) -> np.ndarray:
        """Weights w_i of the given coordinates (any shape), from z and n."""
        z, n = self.z[idx], self.n[idx]
        w = -(z - np.sign(z) * self.l1) / ((self.beta + np.sqrt(n)) / self.alpha + self.l2)
        return np.where(np.abs(z) <= self.l1, 0.0, w)

    def weights(self) -> np.ndarray:
        """All `size` weights; exact zeros where |z_i| <= l1."""
        return self.weights_at(np.arange(self.size))

    def predict(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """Click probabilities [B] of rows idx/val [B, F] (no learning)."""
        logit = (self.weights_at(idx) * val).sum(axis=1)
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -LOGIT_CLIP, LOGIT_CLIP)))

    def learn(self, idx: np.ndarray, val: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Learn from rows idx/val [B, F] with 0/1 labels y [B]; returns each row's progressive prediction [B]."""
        idx = np.asarray(idx)
        val = np.asarray(val)
        y = np.asarray(y)
        if idx.ndim != 2 or idx.shape != val.shape or y.shape != (idx.shape[0],):
            raise DataError(f"FTRL learn: idx {idx.shape}, val {val.shape}, y {y.shape} do not match [B, F], [B]")
        if not np.isin(y, (0.0, 1.0)).all():
            raise DataError(f"FTRL learns 0/1 labels; got {np.unique(y[~np.isin(y, (0.0, 1.0))])[:5].tolist()}")
        return self.learn_columns(Slots.given(idx.shape[1]), Columns.given(idx, val), y)

    def learn_columns(self, slots: Slots, cols: Columns, y: np.ndarray) -> np.ndarray:
        """`learn` of the rows `slots` resolve from `cols` (`recforge.train.ftrl_kernel`); y [B] holds 0/1."""
        given = cols.given_idx
        if given.size and (given.min() < 0 or given.max() >= self.size):
            raise DataError(f"FTRL learn: coordinates must lie in [0, {self.size})")
        y = np.ascontiguousarray(y, dtype=np.float64)
        if self.mode == "exact":
            p = np.empty(cols.rows, dtype=np.float64)
            hyper = (self.alpha, self.beta, self.l1, self.l2)
            learn_exact(*slots.packed(), *cols.packed(), y, self.z, self.n, hyper, p)  # type: ignore[call-arg]  # a numba dispatcher
        else:
            p = self._learn_batch(*materialize(slots, cols), y)
        self.n_learned += cols.rows
        return p

    def _learn_batch(self, idx: np.ndarray, val: np.ndarray, y: np.ndarray) -> np.ndarray:
        p = self.predict(idx, val)
        g = (p - y)[:, None] * val
        coords, inverse = np.unique(idx.ravel(), return_inverse=True)
        grad = np.bincount(inverse, weights=g.ravel(), minlength=len(coords))
        w = self.weights_at(coords)
        n = self.n[coords]
        sigma = (np.sqrt(n + grad * grad) - np.sqrt(n)) / self.alpha
        self.z[coords] += grad - sigma * w
        self.n[coords] = n + grad * grad
        return p

    def state(self) -> dict[str, np.ndarray]:
        """The accumulators (what a warm start needs besides the hyper-parameters)."""
        return {"z": self.z, "n": self.n, "n_learned": np.array([self.n_learned], dtype=np.int64)}

    def load_state(self, state: dict[str, np.ndarray], where: str) -> None:
        """Continue from `state()` of a model over the same coordinates; `where` names its file in errors."""
        for key in ("z", "n"):
            if key not in state or state[key].shape != (self.size,):
                got = state[key].shape if key in state else "nothing"
                raise BundleError(
                    f"{where}: FTRL {key} has shape {got}, expected ({self.size},); the features or model changed "
                    "since it was written, so start from scratch (remove the work directory)"
                )
        self.z, self.n = state["z"].astype(np.float64), state["n"].astype(np.float64)
        self.n_learned = int(state["n_learned"][0]) if "n_learned" in state else 0
