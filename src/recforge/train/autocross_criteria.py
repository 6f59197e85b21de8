"""What an AutoCross proxy is fitted on and scored on: the criterion that decides which crosses generalise.

`valid` fits the proxy on every train row and scores it on every valid row: with a random split the same users
appear on both sides, so an id-level cross (`user_id x category_id`) scores by memorising each user's seen
tastes. `unseen_users` holds a share of the users out of the proxy's fit and scores candidates only on those
users' valid rows: a cross then wins only by what it tells about users the proxy never saw, which is what a
coarse cross (`city_tier x category_id`) does and an id-level one cannot (its cells for those users are unseen,
so their weight stays 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recforge.registry import Registry


@dataclass(frozen=True)
class ProxyRows:
    """Boolean masks: the train rows the proxy is fitted on, and the train and valid rows it is scored on."""

    fit: np.ndarray
    score_train: np.ndarray
    score_valid: np.ndarray

    def split(self, train: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fitted rows, scored rows) of one per-row array (field codes or labels); scored train rows come first."""
        return train[self.fit], np.concatenate([train[self.score_train], valid[self.score_valid]])


Criterion = Callable[[np.ndarray, np.ndarray, float, int], ProxyRows]
CRITERIA: Registry[Criterion] = Registry("autocross criterion")


@CRITERIA.register("valid")
def all_rows(train_keys: np.ndarray, valid_keys: np.ndarray, share: float, seed: int) -> ProxyRows:
    """Fit on every train row, score on every valid row (seen users on both sides under a random split)."""
    return ProxyRows(np.ones(len(train_keys), bool), np.zeros(len(train_keys), bool), np.ones(len(valid_keys), bool))


@CRITERIA.register("unseen_users")
def unseen_users(train_keys: np.ndarray, valid_keys: np.ndarray, share: float, seed: int) -> ProxyRows:
    """Hold `share` of the users (drawn with `seed`) out of the fit; score on all their rows, train and valid.

    Their train rows are unseen by the proxy as much as their valid rows, so both score it: about
    `share` x (train + valid) rows instead of `share` x valid, which keeps the uplifts' noise down.
    """
    users, inverse = np.unique(np.concatenate([train_keys, valid_keys]), return_inverse=True)
    held = np.random.default_rng(seed).random(len(users)) < share
    row_held = held[inverse.reshape(-1)]
    train_held = row_held[: len(train_keys)]
    return ProxyRows(~train_held, train_held, row_held[len(train_keys) :])
