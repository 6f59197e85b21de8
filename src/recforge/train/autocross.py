"""AutoCross: find the feature crosses worth adding, with a cheap proxy instead of full trainings.

The proxy is a field-wise logistic regression (one weight per value of each categorical field), fitted by
block Newton steps over `np.bincount`, so a fit over 10^5 rows takes milliseconds. A candidate cross is
scored the way AutoCross (Luo et al., KDD 2019) does: the current model's margin is kept fixed as an
offset and only the new field's weights are fitted, then the candidate's validation AUC gain is its
uplift. The best candidate above `min_uplift` is accepted, the model is refitted with it, and the next
round also tries the accepted crosses extended by one more field (greedy higher orders).

Fields are given as integer codes per row (0..n-1), e.g. the ids FeatureSet.transform makes.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from recforge.errors import DataError, RecforgeError
from recforge.train.autocross_criteria import ProxyRows
from recforge.train.metrics import auc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codes:
    """One categorical field of the train and valid samples: codes in [0, size); `size - 1` may mean unseen."""

    train: np.ndarray
    valid: np.ndarray
    size: int


DENSE_KEYS = 1 << 24  # below this many possible keys, codes come from a lookup table instead of a sort


def codes_of(train: np.ndarray, valid: np.ndarray, n_keys: int | None = None) -> Codes:
    """Dense codes of int64 keys: values seen in train get 0..k-1, a value seen only in valid gets k.

    With `n_keys` (keys known to lie in [0, n_keys)) small enough, a lookup table replaces the sort.
    """
    if n_keys is not None and n_keys <= DENSE_KEYS:
        present = np.bincount(train, minlength=n_keys) > 0
        k = int(present.sum())
        table = np.where(present, np.cumsum(present) - 1, k)
        return Codes(table[train], table[valid], k + 1)
    seen, codes = np.unique(train, return_inverse=True)
    at = np.minimum(np.searchsorted(seen, valid), seen.size - 1)
    unseen = np.where(seen[at] == valid, at, seen.size)
    return Codes(codes.astype(np.int64).reshape(-1), unseen.astype(np.int64), seen.size + 1)


def cross_codes(a: Codes, b: Codes) -> Codes:
    """Codes of the value pairs (a, b) seen in train; a pair seen only in valid gets the unseen code."""
    if a.size * b.size >= 2**62:
        raise RecforgeError(f"cross of fields with {a.size} and {b.size} values overflows int64 keys")
    return codes_of(
        a.train.astype(np.int64) * b.size + b.train, a.valid.astype(np.int64) * b.size + b.valid, a.size * b.size
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return expit(x)  # type: ignore[no-any-return]


def fit_field(
    codes: np.ndarray,
    size: int,
    labels: np.ndarray,
    offset: np.ndarray,
    *,
    l2: float = 1.0,
    iters: int = 6,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Per-value weights w maximizing the L2-penalized likelihood of sigmoid(offset + w[codes]).

    Each value's weight is a 1-D convex problem, so Newton steps over all values at once converge in a few
    iterations. Values that never occur keep weight 0.
    """
    w = np.zeros(size) if start is None else start.copy()
    for _ in range(iters):
        p = _sigmoid(offset + w[codes])
        grad = np.bincount(codes, weights=p - labels, minlength=size) + l2 * w
        hess = np.bincount(codes, weights=p * (1.0 - p), minlength=size) + l2
        w -= grad / np.maximum(hess, 1e-12)  # a value that never occurs has grad 0: it stays 0
    return w


@dataclass
class FieldwiseLR:
    """bias + sum_f w_f[code_f], fitted by block coordinate Newton sweeps (one block per field)."""

    l2: float = 1.0
    sweeps: int = 4
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    bias: float = 0.0

    def fit(self, fields: dict[str, Codes], labels: np.ndarray) -> FieldwiseLR:
        """Fit (warm-starting from the weights of fields already known) on the train codes."""
        rate = float(np.clip(labels.mean(), 1e-6, 1 - 1e-6))
        if not self.weights:
            self.bias = float(np.log(rate / (1 - rate)))
        for name, f in fields.items():
            if name not in self.weights or self.weights[name].size != f.size:
                self.weights[name] = np.zeros(f.size)
        margin = self.margin(fields, "train")
        for _ in range(self.sweeps):
            for name, f in fields.items():
                offset = margin - self.weights[name][f.train]
                self.weights[name] = fit_field(
                    f.train, f.size, labels, offset, l2=self.l2, start=self.weights[name], iters=2
                )
                margin = offset + self.weights[name][f.train]
            p = _sigmoid(margin)
            step = float((labels - p).sum() / max(float((p * (1 - p)).sum()), 1e-9))  # Newton step on the bias
            self.bias += step
            margin = margin + step
        return self

    def margin(self, fields: dict[str, Codes], split: str) -> np.ndarray:
        """Logits for the `train` or `valid` codes of `fields` (fields the model lacks add nothing)."""
        first = next(iter(fields.values()))
        out = np.full(getattr(first, split).size, self.bias)
        for name, f in fields.items():
            if name in self.weights:
                out += self.weights[name][getattr(f, split)]
        return out


@dataclass(frozen=True)
class Trial:
    """One candidate in one round: its inputs, its validation AUC with the current model, and the gain."""

    round: int
    inputs: tuple[str, ...]
    auc: float
    uplift: float
    cells: int  # value combinations seen in the train sample


@dataclass(frozen=True)
class AcceptedCross:
    inputs: tuple[str, ...]
    uplift: float  # valid AUC gain of the proxy when the cross was added (fixed-offset fit)
    auc: float  # proxy valid AUC after refitting every field with the cross
    cells: int

    @property
    def name(self) -> str:
        return "_x_".join(self.inputs)


@dataclass
class AutoCrossResult:
    base_auc: float  # proxy valid AUC without any new cross
    accepted: list[AcceptedCross]
    trials: list[Trial]

    @property
    def final_auc(self) -> float:
        return self.accepted[-1].auc if self.accepted else self.base_auc


@dataclass(frozen=True)
class SearchOptions:
    max_crosses: int = 5
    max_order: int = 3
    min_uplift: float = 0.001
    l2: float = 1.0
    sweeps: int = 4
    criterion: str = "unseen_users"  # a name in CRITERIA (train/autocross_criteria.py)
    holdout_share: float = 0.3  # users held out of the proxy's fit by the `unseen_users` criterion
    holdout_key: str = "user_id"  # the samples' user column that criterion holds out by


def search_crosses(
    fields: dict[str, Codes],
    labels_train: np.ndarray,
    labels_valid: np.ndarray,
    candidates: list[str],
    options: SearchOptions = SearchOptions(),
    existing: tuple[frozenset[str], ...] = (),
    rows: ProxyRows | None = None,
) -> AutoCrossResult:
    """Greedy search: pairs of `candidates` first, then accepted crosses extended by one candidate field.

    `fields` is what the proxy model holds from the start (candidates and any other single-valued field);
    `existing` lists input sets that are already crosses in the config and are never proposed again;
    `rows` (the criterion's choice) restricts the rows the proxy is fitted and scored on (default: all).
    """
    missing = [c for c in candidates if c not in fields]
    if missing:
        raise RecforgeError(f"autocross candidates {missing} have no codes; known fields: {sorted(fields)}")
    if rows is not None:
        fields, labels_train, labels_valid = restrict(fields, labels_train, labels_valid, rows)
    labels_train = labels_train.astype(np.float64)
    model = FieldwiseLR(l2=options.l2, sweeps=options.sweeps).fit(fields, labels_train)
    current = auc(labels_valid, model.margin(fields, "valid"))
    result = AutoCrossResult(base_auc=current, accepted=[], trials=[])
    log.info("autocross: proxy LR over %d fields, valid AUC %.4f", len(fields), current)
    cache: dict[tuple[str, ...], Codes] = {}
    pool = [tuple(p) for p in itertools.combinations(candidates, 2)]
    taken = set(existing)
    active = dict(fields)
    for round_ in range(1, options.max_crosses + 1):
        train_margin = model.margin(active, "train")
        valid_margin = model.margin(active, "valid")
        best: Trial | None = None
        for inputs in pool:
            if frozenset(inputs) in taken:
                continue
            codes = cache.get(inputs) or _codes(inputs, fields, cache)
            w = fit_field(codes.train, codes.size, labels_train, train_margin, l2=options.l2)
            score = auc(labels_valid, valid_margin + w[codes.valid])
            trial = Trial(round_, inputs, score, score - current, codes.size - 1)
            result.trials.append(trial)
            if best is None or trial.uplift > best.uplift:
                best = trial
        if best is None or best.uplift < options.min_uplift:
            log.info("autocross: stop at round %d (best uplift %s)", round_, best and f"{best.uplift:.5f}")
            break
        name = "_x_".join(best.inputs)
        active[name] = cache[best.inputs]
        model.fit(active, labels_train)
        current = auc(labels_valid, model.margin(active, "valid"))
        result.accepted.append(AcceptedCross(best.inputs, best.uplift, current, best.cells))
        taken.add(frozenset(best.inputs))
        log.info("autocross: accept %s (uplift %.5f, valid AUC %.4f)", name, best.uplift, current)
        if len(best.inputs) < options.max_order:
            pool += [(*best.inputs, c) for c in candidates if c not in best.inputs]
    return result


def restrict(
    fields: dict[str, Codes], labels_train: np.ndarray, labels_valid: np.ndarray, rows: ProxyRows
) -> tuple[dict[str, Codes], np.ndarray, np.ndarray]:
    """Fields and labels cut to the rows the criterion fits the proxy on (train side) and scores it on (valid side)."""
    fit, score = rows.split(labels_train, labels_valid)
    if np.unique(fit).size < 2 or np.unique(score).size < 2:
        raise DataError(
            "autocross: the proxy's fit or scoring rows hold a single class, so no AUC can be computed"
            "\n  fix: sample more rows, or hold out a larger share of users (--holdout-share)"
        )
    return {name: Codes(*rows.split(f.train, f.valid), f.size) for name, f in fields.items()}, fit, score


def _codes(inputs: tuple[str, ...], fields: dict[str, Codes], cache: dict[tuple[str, ...], Codes]) -> Codes:
    """Codes of a cross, built from the cached cross of its first len-1 inputs when there is one."""
    head = inputs[:-1]
    left = fields[head[0]] if len(head) == 1 else cache.get(head) or _codes(head, fields, cache)
    cache[inputs] = cross_codes(left, fields[inputs[-1]])
    return cache[inputs]
