"""Full-ranking evaluation of every channel and of the merged list on one split."""

from __future__ import annotations

import numpy as np

from recforge.config.recall import RecallEvalConfig
from recforge.errors import DataError
from recforge.progress import track
from recforge.recall.interactions import RecallData
from recforge.recall.metrics import topk_metrics
from recforge.recall.model import RecallModel

MERGED = "merged"


def evaluate_split(
    model: RecallModel, data: RecallData, split: str, cfg: RecallEvalConfig, progress: bool = True
) -> dict[str, dict[str, float]]:
    """Metrics per channel name and for `merged`: users with held-out items in `split`, seen items masked."""
    held_out = getattr(data, split)
    if held_out is None:
        raise DataError(f"the recall data has no {split!r} split to evaluate")
    truth = held_out.binary()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    seen = data.seen_before(split)
    depth = max(cfg.ks)
    if depth > model.config.merge.k:
        raise DataError(f"recall.eval.ks goes to {depth} but recall.merge.k is {model.config.merge.k}")
    lists: dict[str, list[np.ndarray]] = {name: [] for name in (*model.channels, MERGED)}
    blocks = range(0, len(users), cfg.user_batch)
    for start in track(blocks, f"recall eval {split}", unit="blocks", enabled=progress):
        block = users[start : start + cfg.user_batch]
        query = model.query(block, exclude=seen[block])
        per_channel = model.channel_candidates(query, depth)
        for name, cand in per_channel.items():
            lists[name].append(cand.items[:, :depth])
        lists[MERGED].append(model.merge(query, per_channel).items[:, :depth])
    n_items = data.vocab.n_items
    return {
        name: topk_metrics(np.concatenate(parts), truth[users], cfg.ks, cfg.metrics, n_items=n_items)
        for name, parts in lists.items()
    }
