"""The main job on embedded defaults: synthetic world -> ranking model and recall channels -> demo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from recforge.bundle import load_bundle
from recforge.config import build_config
from recforge.pipeline.rank import RunResult, demo_recommendations, quickstart_config, train
from recforge.pipeline.recall import RecallRun, recall_train
from recforge.recall.model import RecallModel


@dataclass
class QuickstartResult:
    rank: RunResult
    recall: RecallRun | None
    demo: dict[str, pa.Table]


def quickstart(out_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> QuickstartResult:
    """Train the ranking model, then the recall channels; demo: recall candidates ranked by the model."""
    cfg = build_config(quickstart_config(), overrides, file="<quickstart preset>")
    out = Path(out_dir)
    rank = train(cfg, out)
    if cfg.recall is None:
        return QuickstartResult(rank, None, demo_recommendations(load_bundle(rank.bundle), rank.samples))
    recall = recall_train(cfg, out / "recall")
    rank.metrics["recall"] = {split: recall.metrics[split] for split in ("valid", "test") if split in recall.metrics}
    (out / "metrics.json").write_text(json.dumps(rank.metrics, indent=1))
    model = RecallModel.load(recall.bundle)

    def candidates(user: pa.Scalar) -> pa.Array | None:
        code = model.vocab.encode_users(pa.array([user.as_py()], model.vocab.user_ids.type))
        if code[0] < 0:
            return None
        items = model.recall(model.query(code, exclude=model.history[code])).items[0]
        return model.vocab.item_ids.take(pa.array(items[items >= 0]))

    return QuickstartResult(
        rank, recall, demo_recommendations(load_bundle(rank.bundle), rank.samples, candidates=candidates)
    )
