"""AutoCross on the synthetic world with a planted category_id x city_tier interaction.

Per seed: `recforge features autocross` logic (field-wise LR proxy) on the samples, then LR and DeepFM
trained with the config's features and again with the accepted crosses added; reports the proxy's
uplifts, both models' valid / test AUC with and without the crosses, and the proxy search time beside
one DeepFM training (a ratio, same run, same threads). Also ranks the base DeepFM's features by
permutation importance to show the noise columns at the bottom.

    python bench/autocross_synthetic.py --seeds 3 --impressions 500000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def config(seed: int, impressions: int, model: str) -> dict[str, Any]:
    tree = yaml.safe_load((REPO / "examples" / "synthetic_deepfm.yaml").read_text())
    tree["data"]["synthetic"].update(
        n_impressions=impressions, seed=seed, cross_strength=1.0, noise_columns=2
    )  # fmt: skip
    tree["features"] += [{"name": "noise_1", "kind": "id"}, {"name": "noise_2", "kind": "id"}]
    tree["train"].update(progress=False, threads=1)
    if model == "lr":
        tree["model"] = {"name": "lr"}
        tree["train"]["optimizer"] = {"lr": 0.01}
    return tree


def run_seed(seed: int, impressions: int, work: Path) -> dict[str, Any]:
    import torch

    from recforge.config import build_config
    from recforge.pipeline import train
    from recforge.pipeline.autocross import autocross, with_crosses
    from recforge.pipeline.importance import feature_importance

    torch.set_num_threads(1)
    started = time.perf_counter()
    search = autocross(build_config(config(seed, impressions, "deepfm")), work / f"ac{seed}")
    search_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "seed": seed,
        "search_s": search_s,
        "proxy_base_auc": search.result.base_auc,
        "candidates_scored": len(search.result.trials),
        "accepted": [
            {"cross": "_x_".join(a.inputs), "uplift": a.uplift, "proxy_auc": a.auc} for a in search.result.accepted
        ],
    }
    for model in ("lr", "deepfm"):
        base = config(seed, impressions, model)
        for variant, tree in (("base", base), ("crossed", with_crosses(base, search.crosses))):
            started = time.perf_counter()
            result = train(build_config(tree), work / f"{model}_{variant}_{seed}")
            out[f"{model}_{variant}_s"] = time.perf_counter() - started
            out[f"{model}_{variant}"] = {k: result.metrics[k]["auc"] for k in ("valid", "test")}
            if model == "deepfm" and variant == "base":
                imp = feature_importance(
                    result.bundle, str(result.samples.test), work / f"imp{seed}", repeats=5, rows=100_000
                )
                out["importance"] = [(f.feature, round(f.importance, 5), round(f.std, 5)) for f in imp.fields]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--impressions", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-autocross-") as tmp:
        runs = [run_seed(seed, args.impressions, Path(tmp)) for seed in range(args.seeds)]
    print("\n| seed | accepted crosses (proxy uplift) | proxy AUC | LR test AUC base -> crossed | "
          "DeepFM test AUC base -> crossed | search s (candidates) / DeepFM train s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in runs:
        crosses = ", ".join(f"{a['cross']} ({a['uplift']:+.4f})" for a in r["accepted"])
        final = r["accepted"][-1]["proxy_auc"] if r["accepted"] else r["proxy_base_auc"]
        print(
            f"| {r['seed']} | {crosses} | {r['proxy_base_auc']:.4f} -> {final:.4f} | "
            f"{r['lr_base']['test']:.4f} -> {r['lr_crossed']['test']:.4f} | "
            f"{r['deepfm_base']['test']:.4f} -> {r['deepfm_crossed']['test']:.4f} | "
            f"{r['search_s']:.1f} ({r['candidates_scored']}) / {r['deepfm_base_s']:.1f} = "
            f"{r['search_s'] / r['deepfm_base_s']:.2f}x |"
        )
    for model in ("lr", "deepfm"):
        gains = [r[f"{model}_crossed"]["test"] - r[f"{model}_base"]["test"] for r in runs]
        print(
            f"{model}: median test AUC gain {statistics.median(gains):+.4f} (per seed {[f'{g:+.4f}' for g in gains]})"
        )
    print(
        "\nbase DeepFM permutation importance (seed 0): "
        + ", ".join(f"{n} {m:.4f}" for n, m, _ in runs[0]["importance"])
    )


if __name__ == "__main__":
    main()
