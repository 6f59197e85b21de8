"""recforge's VectorIndex (Faiss HNSW / IVF) vs exact Faiss search (IndexFlatIP) on 64-d item vectors.

For each data set and catalog size: exact top-k gives the ground truth and the reference timings; each
index preset is built once and swept over its search knob (ef_search or nprobe). Per point: build
seconds, recall@k vs exact, ms/query one query at a time on 1 thread, ms/query batched on --threads,
and both speed ratios vs exact measured the same way in the same run (best of --repeats each).

Data sets (queries are fresh draws from the same distribution):
- gaussian:  i.i.d. N(0, 1) coordinates, the issue's literal target (no structure to exploit).
- embedding: embedding-like. 1,000 cluster centres in a 16-d latent space (N(0, 1)), points = centre
  + N(0, 0.5²) latent noise, mapped to 64-d by one fixed random linear map, plus N(0, 0.1²) noise on
  every coordinate, then unit-normalized (so inner product = cosine). Low intrinsic dimension and
  clusters, as trained two-tower or MF item embeddings have.

    python bench/ann_faiss.py --sizes 100000 1000000 --out bench/work/ann_faiss.json
"""

from __future__ import annotations

import os

# The box is shared: OpenMP threads that spin at barriers lose their time slices to other jobs
# (measured: a 2-thread HNSW build 5x slower than 1 thread); sleeping threads do not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from recforge.config.ann import IndexConfig
from recforge.recall.ann import VectorIndex, faiss_threads


def gaussian(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def embedding_like(n: int, dim: int, seed: int, latent: int = 16, clusters: int = 1_000) -> np.ndarray:
    fixed = np.random.default_rng(1234)  # the distribution itself: the same for items and queries
    centres = fixed.standard_normal((clusters, latent)).astype(np.float32)
    lift = (fixed.standard_normal((latent, dim)) / np.sqrt(latent)).astype(np.float32)
    rng, out = np.random.default_rng(seed), np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centres[rng.integers(clusters, size=m)] + 0.5 * rng.standard_normal((m, latent), dtype=np.float32)
        out[start : start + m] = z @ lift + 0.1 * rng.standard_normal((m, dim), dtype=np.float32)
    faiss.normalize_L2(out)
    return out


DATASETS: dict[str, Callable[[int, int, int], np.ndarray]] = {"gaussian": gaussian, "embedding": embedding_like}


class Recforge:
    """recforge's VectorIndex with one IndexConfig; `knob` is a set_search_params argument."""

    def __init__(self, config: dict, items: np.ndarray, threads: int) -> None:
        config = {**config, "threads": threads}
        self.index = VectorIndex.build(items, np.arange(len(items)), IndexConfig.model_validate(config))

    def tune(self, knob: str, value: int) -> None:
        self.index.set_search_params(**{knob: value})

    def search(self, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
        self.index.threads = threads
        return self.index.search(queries, k)[0]


class FaissRefine:
    """Raw Faiss, not a recforge kind: an exhaustive 4-bit PQ fast-scan whose top k*k_factor are re-ranked exactly."""

    def __init__(self, spec: str, items: np.ndarray, threads: int) -> None:
        self.codes = faiss.index_factory(items.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        self.exact = faiss.IndexFlatIP(items.shape[1])
        with faiss_threads(threads):
            self.codes.train(items[:100_000])
            self.codes.add(items)
        self.exact.add(items)
        self.index = faiss.IndexRefine(self.codes, self.exact)

    def tune(self, knob: str, value: int) -> None:
        self.index.k_factor = value

    def search(self, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
        with faiss_threads(threads):
            return self.index.search(queries, k)[1]


@dataclass(frozen=True)
class Preset:
    make: Callable[[np.ndarray, int], Recforge | FaissRefine]
    knob: str
    values: list[int]
    max_items: int | None = None  # bigger builds do not fit this box's time budget


def recforge(config: dict) -> Callable[[np.ndarray, int], Recforge]:
    return lambda items, threads: Recforge(config, items, threads)


PRESETS: dict[str, Preset] = {
    "hnsw32": Preset(
        recforge({"kind": "hnsw", "hnsw": {"m": 32, "ef_construction": 80}}), "ef_search", [128, 256, 512, 1024, 2048]
    ),
    "hnsw32_l2": Preset(
        recforge({"kind": "hnsw", "hnsw": {"m": 32, "ef_construction": 80, "mips_to_l2": True}}),
        "ef_search",
        [256, 1024],
        max_items=100_000,
    ),
    "hnsw64": Preset(
        recforge({"kind": "hnsw", "hnsw": {"m": 64, "ef_construction": 160}}),
        "ef_search",
        [256, 512, 1024, 2048],
        max_items=100_000,
    ),
    "ivf": Preset(recforge({"kind": "ivf"}), "nprobe", [16, 64, 256]),
    "pq32fs_refine": Preset(lambda items, threads: FaissRefine("PQ32x4fs", items, threads), "k_factor", [5, 10, 20]),
}


@dataclass
class Point:
    data: str
    n: int
    index: str
    knob: str
    value: int
    build_s: float
    recall: float
    single_ms: float
    batch_ms: float
    single_speedup: float
    batch_speedup: float


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest of `repeats` wall times in seconds (the machine is shared; the minimum is the least noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def recall_at(ids: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(ids, truth, strict=True)]))


class Exact:
    """The reference: Faiss IndexFlatIP over the same vectors, timed the same two ways."""

    def __init__(self, items: np.ndarray, queries: np.ndarray, k: int, threads: int, single: int, repeats: int):
        self.flat = faiss.IndexFlatIP(items.shape[1])
        self.flat.add(items)
        with faiss_threads(threads):
            self.truth = self.flat.search(queries, k)[1]
            self.batch_ms = best_of(repeats, lambda: self.flat.search(queries, k)) / len(queries) * 1e3
        with faiss_threads(1):
            loop = lambda: [self.flat.search(queries[i : i + 1], k) for i in range(single)]  # noqa: E731
            self.single_ms = best_of(repeats, loop) / single * 1e3


def sweep(name: str, data: str, items: np.ndarray, queries: np.ndarray, exact: Exact, args: argparse.Namespace):
    """Build preset `name` once, then time and score every value of its search knob."""
    preset = PRESETS[name]
    start = time.perf_counter()
    index = preset.make(items, args.threads)
    build_s = time.perf_counter() - start
    print(f"  {name}: built in {build_s:.1f}s", flush=True)
    for value in preset.values:
        index.tune(preset.knob, value)
        ids = index.search(queries, args.k, args.threads)
        batch_ms = best_of(args.repeats, lambda: index.search(queries, args.k, args.threads)) / len(queries) * 1e3
        loop = lambda: [index.search(queries[i : i + 1], args.k, 1) for i in range(args.single)]  # noqa: E731
        single_ms = best_of(args.repeats, loop) / args.single * 1e3
        point = Point(
            data=data,
            n=len(items),
            index=name,
            knob=preset.knob,
            value=value,
            build_s=round(build_s, 1),
            recall=recall_at(ids, exact.truth),
            single_ms=single_ms,
            batch_ms=batch_ms,
            single_speedup=exact.single_ms / single_ms,
            batch_speedup=exact.batch_ms / batch_ms,
        )
        print(
            f"    {preset.knob}={value:<5} recall={point.recall:.4f} single={single_ms:.3f}ms "
            f"({point.single_speedup:.1f}x) batch={batch_ms:.3f}ms ({point.batch_speedup:.1f}x)",
            flush=True,
        )
        yield point


def table(points: list[Point], exact_rows: list[dict]) -> str:
    lines = [
        "| data | items | index | knob | build s | recall@100 | single ms/q | vs exact | batched ms/q | vs exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in exact_rows:
        lines.append(
            f"| {row['data']} | {row['n']:,} | exact (IndexFlatIP) | — | — | 1.0000 | {row['single_ms']:.3f} | 1.0x "
            f"| {row['batch_ms']:.3f} | 1.0x |"
        )
        for p in (p for p in points if (p.data, p.n) == (row["data"], row["n"])):
            lines.append(
                f"| {p.data} | {p.n:,} | {p.index} | {p.knob}={p.value} | {p.build_s:.1f} | {p.recall:.4f} "
                f"| {p.single_ms:.3f} | {p.single_speedup:.1f}x | {p.batch_ms:.3f} | {p.batch_speedup:.1f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--indexes", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1_000, help="queries for recall and batched timing")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="Faiss threads for builds and batched search")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/work/ann_faiss.json"))
    args = parser.parse_args()

    points: list[Point] = []
    exact_rows: list[dict] = []
    for data in args.data:
        for n in args.sizes:
            items = DATASETS[data](n, args.dim, 0)
            queries = DATASETS[data](args.queries, args.dim, 1)
            exact = Exact(items, queries, args.k, args.threads, args.single, args.repeats)
            exact_rows.append({"data": data, "n": n, "single_ms": exact.single_ms, "batch_ms": exact.batch_ms})
            print(f"{data} n={n:,}: exact single={exact.single_ms:.3f}ms batch={exact.batch_ms:.3f}ms", flush=True)
            for name in (name for name in args.indexes if n <= (PRESETS[name].max_items or n)):
                points.extend(sweep(name, data, items, queries, exact, args))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                report = {"args": {**vars(args), "out": str(args.out)}, "exact": exact_rows}
                args.out.write_text(json.dumps({**report, "points": [asdict(p) for p in points]}, indent=1))
            del exact, items
    print()
    print(table(points, exact_rows))


if __name__ == "__main__":
    main()
