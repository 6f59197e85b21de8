"""AutoCross criteria on a world that offers id-level crosses: does the planted coarse cross win?

The world (`user_taste` on): 500 users with ~200 impressions each, 2,000 items, a planted category_id x
city_tier interaction (`cross_strength`) and a per-user x category taste (`user_taste`) that only
user_id x category_id can memorise and that says nothing about unseen users. Per world seed, the search
runs once per criterion (`valid`: proxy scored on the valid split, the same users it was fitted on;
`unseen_users`: 30% of users held out of the fit and the proxy scored on their rows) and prints the
accepted crosses with their uplifts and proxy AUCs, and the round-1 leaders.

    python bench/autocross_unseen_users.py --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import id_level_cross_world  # noqa: E402


def run(seed: int, criterion: str, work: Path) -> dict[str, Any]:
    from recforge.config import build_config
    from recforge.pipeline.autocross import autocross
    from recforge.train.autocross import SearchOptions

    started = time.perf_counter()
    search = autocross(build_config(id_level_cross_world(seed)), work / f"s{seed}", SearchOptions(criterion=criterion))
    result = search.result
    first = sorted((t for t in result.trials if t.round == 1), key=lambda t: -t.uplift)[:3]
    return {
        "seed": seed,
        "criterion": criterion,
        "seconds": time.perf_counter() - started,
        "base": result.base_auc,
        "accepted": [(a.name, a.uplift, a.auc, a.cells) for a in result.accepted],
        "round1": [("_x_".join(t.inputs), t.uplift, t.cells) for t in first],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("| seed | criterion | accepted crosses (uplift, proxy AUC after, cells) | proxy AUC base | round-1 top 3 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-autocross-unseen-") as tmp:
        for seed in range(args.seeds):
            for criterion in ("valid", "unseen_users"):
                r = run(seed, criterion, Path(tmp))
                accepted = ", ".join(f"{n} ({u:+.4f}, {a:.4f}, {c:,})" for n, u, a, c in r["accepted"])
                leaders = ", ".join(f"{n} {u:+.4f}" for n, u, _ in r["round1"])
                print(f"| {seed} | {criterion} | {accepted} | {r['base']:.4f} | {leaders} |", flush=True)


if __name__ == "__main__":
    main()
