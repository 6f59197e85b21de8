"""Wall time of `recforge train` on the small synthetic config (1 epoch), engine duckdb vs engine spark on local[2].

Run from the repository root: `nice -n 19 python bench/spark_train.py OUT_DIR`. The Spark session starts before
both timings (its start-up is excluded); the Spark run builds its samples, fits and transforms on Spark.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from recforge.config import build_config
from recforge.data.spark_session import spark_session
from recforge.pipeline.rank import train

from support import FAST_LOCAL_SPARK, small_synthetic


def main(out: Path) -> None:
    spark_session("local[2]", FAST_LOCAL_SPARK)
    for engine in ("duckdb", "spark"):
        tree = small_synthetic(epochs=1, early_stop=None)
        tree["engine"] = engine
        start = time.perf_counter()
        result = train(build_config(tree), out / engine)
        print(f"{engine}: {time.perf_counter() - start:.1f} s, test {result.metrics['test']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
