"""The synthetic world's recency effect: a user's recently clicked categories raise the click probability.

Unlike the other logit terms it depends on earlier draws (which impressions were clicked), so clicks are
drawn one impression at a time in time order. Only the user's last `window` clicks count, which a model
can read from the click history if it knows which elements are the latest.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np


def recency_clicks(
    user: np.ndarray,
    category: np.ndarray,
    ts: np.ndarray,
    logit: np.ndarray,
    draws: np.ndarray,
    effect: float,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(recency logit term, clicks): impression k gets `effect` x (share of the user's last `window` clicks in
    its category) and is clicked when draws[k] < sigmoid(logit[k] + term[k]); impressions go in time order."""
    term = np.zeros(len(user))
    click = np.zeros(len(user), dtype=bool)
    recent: dict[int, deque[int]] = {}
    users, cats, logits, uniform = user.tolist(), category.tolist(), logit.tolist(), draws.tolist()
    for k in np.argsort(ts, kind="stable").tolist():
        history = recent.get(users[k])
        share = history.count(cats[k]) / window if history else 0.0
        term[k] = effect * share
        if uniform[k] < 1.0 / (1.0 + math.exp(-(logits[k] + effect * share))):
            click[k] = True
            recent.setdefault(users[k], deque(maxlen=window)).append(cats[k])
    return term, click
