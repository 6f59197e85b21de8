"""Top-K metrics of ranked item lists against held-out items (RecBole's definitions).

For a user with held-out set T and ranked list r_1..r_K (hit_j = r_j in T):
  recall@k = hits@k / |T|            precision@k = hits@k / k        hit@k = [hits@k > 0]
  mrr@k    = 1 / (first hit rank)    ndcg@k = sum_j hit_j / log2(j + 1) / sum_{j <= min(|T|, k)} 1 / log2(j + 1)
averaged over users with a non-empty T; coverage@k = distinct items in the top-k lists / catalog size.

>>> import numpy as np, scipy.sparse as sp
>>> truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]]))
>>> ranked = np.array([[2, 1], [0, 3]])
>>> m = topk_metrics(ranked, truth, [2], n_items=4)
>>> m["recall@2"], m["hit@2"], m["precision@2"], m["mrr@2"], m["coverage@2"]
(0.75, 1.0, 0.5, 0.75, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from recforge.errors import ConfigError, DataError
from recforge.registry import Registry

Metric = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (hits [U, K] bool, |T| [U], k) -> per-user [U]
TOPK_METRICS: Registry[Metric] = Registry("recall metric")


@TOPK_METRICS.register("recall")
def recall_at(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].sum(axis=1) / n_true, dtype=np.float64)


@TOPK_METRICS.register("precision")
def precision_at(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].sum(axis=1) / k, dtype=np.float64)


@TOPK_METRICS.register("hit")
def hit_at(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


@TOPK_METRICS.register("mrr")
def mrr_at(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    top = hits[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


@TOPK_METRICS.register("ndcg")
def ndcg_at(hits: np.ndarray, n_true: np.ndarray, k: int) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discount[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_true, k).astype(np.int64) - 1]
    return dcg / ideal


def hit_matrix(ranked: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """[U, K] bool: ranked[u, j] is one of row u's held-out items (-1 padding never hits)."""
    n_items = truth.shape[1]
    truth = truth.tocsr()
    rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    true_keys = rows * n_items + truth.indices.astype(np.int64)
    keys = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * n_items + ranked
    return np.isin(keys, true_keys) & (ranked >= 0)


def topk_metrics(
    ranked: np.ndarray,
    truth: sp.csr_matrix,
    ks: Sequence[int],
    metrics: Sequence[str] = ("recall", "ndcg", "mrr", "hit", "precision", "coverage"),
    *,
    n_items: int | None = None,
) -> dict[str, float]:
    """Mean of each metric@k over the rows of `truth` that hold an item; `ranked` rows align with `truth`'s."""
    if ranked.shape[0] != truth.shape[0]:
        raise DataError(f"{ranked.shape[0]} ranked lists for {truth.shape[0]} users")
    if ks and max(ks) > ranked.shape[1]:
        raise ConfigError("recall.eval.ks", f"k={max(ks)} but lists hold {ranked.shape[1]} items", fix="lower k")
    n_true = np.diff(truth.tocsr().indptr)
    users = n_true > 0
    if not users.any():
        raise DataError("no user has a held-out item to evaluate against")
    hits = hit_matrix(ranked[users], truth[np.flatnonzero(users)])
    out: dict[str, float] = {}
    catalog = n_items or truth.shape[1]
    for k in ks:
        for name in metrics:
            if name == "coverage":
                top = ranked[:, :k]
                out[f"coverage@{k}"] = float(np.unique(top[top >= 0]).size / catalog)
            else:
                out[f"{name}@{k}"] = float(TOPK_METRICS.get(name)(hits, n_true[users], k).mean())
    out["users"] = int(users.sum())
    return out
