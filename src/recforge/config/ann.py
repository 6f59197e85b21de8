"""ANN index config: which Faiss index a VectorIndex builds and how hard it searches (logic: recforge.recall.ann)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict

Metric = Literal["ip", "cosine", "l2"]


class HnswParams(Strict):
    """Graph index: recall rises with `ef_search` (query time) and `m`/`ef_construction` (build time, memory)."""

    m: int = Field(32, ge=4, le=256, description="Neighbors per node (level 0 keeps 2*m); memory grows with m.")
    ef_construction: int = Field(80, ge=8, description="Candidate list while inserting; higher builds a better graph.")
    ef_search: int = Field(128, ge=1, description="Candidate list while searching (at least k is used).")
    mips_to_l2: bool = Field(
        False,
        description="metric ip: build the graph in L2 over norm-padded vectors (same ranking). Helps when norms "
        "vary widely (tests: recall@50 0.83 -> 0.96), hurts when they are concentrated (bench/RESULTS.md).",
    )


class IvfParams(Strict):
    """Inverted lists: vectors are bucketed by k-means; a query scans the `nprobe` closest buckets."""

    nlist: int | None = Field(
        None, ge=1, description="Number of k-means buckets; default 4*sqrt(N), capped at N/39 (faiss's minimum)."
    )
    nprobe: int = Field(32, ge=1, description="Buckets scanned per query; recall and cost grow with it.")
    quantizer: Literal["flat", "hnsw"] = Field(
        "flat", description="How a query finds its buckets: exact scan of centroids, or an HNSW graph over them."
    )
    quantizer_ef_search: int = Field(128, ge=1, description="hnsw quantizer: candidate list (at least nprobe is used).")


class IndexConfig(Strict):
    """One vector index over item embeddings; search-time knobs can also be changed after build."""

    kind: str = Field("hnsw", description="Registered index kind: flat (exact), hnsw or ivf.")
    metric: Metric = Field(
        "ip", description="ip: inner product; cosine: vectors are L2-normalized, then ip; l2: squared distance."
    )
    hnsw: HnswParams = HnswParams()
    ivf: IvfParams = IvfParams()
    threads: int | None = Field(
        None, ge=1, description="Faiss OpenMP threads for build and search; default torch.get_num_threads()."
    )
    max_overfetch: int = Field(
        1024,
        ge=0,
        description="Extra neighbors fetched per query to survive exclusion; rows that need more are re-searched.",
    )
    seed: int = Field(0, description="Seed for k-means training samples.")
