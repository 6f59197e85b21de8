"""The main job on embedded defaults: synthetic world -> ranking model and recall channels -> service demo."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from recforge.bundle import load_bundle
from recforge.config import build_config
from recforge.config.serving import load_serving_config
from recforge.data.readers import read_table
from recforge.pipeline.rank import RunResult, demo_recommendations, quickstart_config, train
from recforge.pipeline.recall import RecallRun, recall_train
from recforge.pipeline.serve import write_serving_files
from recforge.serving.recommender import RecommendRequest
from recforge.serving.service import build_service


@dataclass
class QuickstartResult:
    rank: RunResult
    recall: RecallRun | None
    demo: dict[str, pa.Table]
    serving: Path | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)


def quickstart(out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), n_users: int = 3) -> QuickstartResult:
    """Train the ranking model and the recall channels, then ask the service (in process) for a few test users."""
    cfg = build_config(quickstart_config(), overrides, file="<quickstart preset>")
    out = Path(out_dir)
    rank = train(cfg, out)
    if cfg.recall is None:
        return QuickstartResult(rank, None, demo_recommendations(load_bundle(rank.bundle), rank.samples))
    recall = recall_train(cfg, out / "recall")
    rank.metrics["recall"] = {split: recall.metrics[split] for split in ("valid", "test") if split in recall.metrics}
    (out / "metrics.json").write_text(json.dumps(rank.metrics, indent=1))
    serving = write_serving_files(cfg, out, recall.bundle)
    service = build_service(rank.bundle, load_serving_config(serving, ["watch.enabled=false"]))
    try:
        key = service.predictor.user_key or "user_id"
        test_users = read_table(rank.samples.test or rank.samples.train, columns=[key])[key].unique()[:n_users]
        requests = [{"user_id": user, "k": 5, "context": {"position": 0}} for user in test_users.to_pylist()]
        answers = [
            service.recommender.recommend(RecommendRequest(r["user_id"], r["k"], r["context"])).to_json(
                r["user_id"], timings=True
            )
            for r in requests
        ]
    finally:
        service.stop()
    demo = {
        str(a["user_id"]): pa.table(
            {service.predictor.item_key: [i["item_id"] for i in a["items"]], "score": [i["score"] for i in a["items"]]}
        )
        for a in answers
    }
    return QuickstartResult(rank, recall, demo, serving, requests, answers)
