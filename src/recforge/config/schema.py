"""The one pipeline YAML, as pydantic models. Validation only: no logic lives here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, model_validator

from recforge.config.engine import SampleEngine, SparkConfig
from recforge.config.features import FeatureConfig, Strict
from recforge.config.negatives import NegativesConfig
from recforge.config.online import FtrlConfig, OnlineConfig
from recforge.config.recall import RecallConfig
from recforge.config.split import SplitConfig
from recforge.config.tables import TablesConfig
from recforge.config.torchrec import TorchRecConfig


class LabelRule(Strict):
    """How a raw behavior row becomes a 0/1 label: SQL over the joined row that DuckDB and Spark both read
    (docs/sql_subset.md)."""

    positive: str = Field(description="Rows where this holds get label 1, e.g. `rating >= 4`.")
    drop: str | None = Field(None, description="Rows where this holds are removed, e.g. `rating = 3`.")


class SyntheticConfig(Strict):
    """Size of the generated e-commerce world (the embedded default dataset)."""

    n_users: int = Field(20_000, ge=10)
    n_items: int = Field(5_000, ge=10)
    n_categories: int = Field(40, ge=2)
    n_impressions: int = Field(1_000_000, ge=100)
    seed: int = 0
    interest_effect: float = Field(
        0.0,
        ge=0,
        description="Planted sequence effect: each user's current interest category (changing every "
        "`interest_days`) gets this logit boost and a share of the feed; only recent clicks reveal it. 0 = off.",
    )
    interest_days: int = Field(5, ge=1, description="Days each interest phase lasts.")
    recency_effect: float = Field(
        0.0,
        ge=0,
        description="Planted recency effect: the logit rises by this times the share of the user's last "
        "`recency_window` clicks that are in the item's category (clicks drawn in time order). 0 = off.",
    )
    recency_window: int = Field(5, ge=1, description="How many of the user's latest clicks count as recent.")
    purchase: bool = Field(
        False,
        description="Add `purchase` (implies click; its own conversion effects, part shared with click) and "
        "`true_ctcvr` to the impressions: a second objective for multi-task models.",
    )
    cross_strength: float = Field(
        0.0, ge=0, description="Plant a pure category_id x city_tier interaction of this logit spread (0: none)."
    )
    noise_columns: int = Field(0, ge=0, le=20, description="Add impression columns noise_1.. that never affect clicks.")
    user_taste: float = Field(
        0.0,
        ge=0,
        description="Plant a per-user x category_id logit of this spread (0: none): a taste a user_id x category_id "
        "cross can memorise for seen users but that tells nothing about unseen ones.",
    )


class HistoryConfig(Strict):
    """A behavior-sequence column built from the raw behavior log: per sample row, the same user's
    `item` values with strictly earlier `time`, oldest first (newest last), at most `max_len`."""

    column: str = Field("history", description="Name of the list column added to the samples.")
    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    max_len: int = Field(50, ge=1)
    where: str | None = Field(None, description="SQL filter on behavior rows that enter histories, e.g. `click = 1`.")


class DataConfig(Strict):
    source: Literal["synthetic", "movielens", "tables", "criteo", "samples"] = "synthetic"
    path: str | None = Field(None, description="Directory (movielens) or file (criteo) to read.")
    train: str | None = Field(None, description="source=samples: prebuilt train file (Parquet/CSV).")
    valid: str | None = None
    test: str | None = None
    label: str = Field("label", description="0/1 label column of the samples.")
    label_rule: LabelRule | None = None
    split: SplitConfig = SplitConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    tables: TablesConfig | None = None
    weight: str | None = Field(None, description="Optional sample-weight column.")
    read_rows: int = Field(65_536, ge=256, description="Rows per Arrow record batch read from disk.")
    history: HistoryConfig | None = Field(None, description="Add each row's behavior history as a list column.")
    negatives: NegativesConfig | None = Field(
        None, description="Sample label-0 rows for a log of positives only (every log row, or its label-1 rows)."
    )
    date: str | None = Field(None, description="The run's date: replaces `{date}` in catalog partition filters.")


class ModelConfig(BaseModel):
    """`name` picks a registered model; the other keys are validated by that model's own config."""

    model_config = ConfigDict(extra="allow")
    name: str = "deepfm"
    _overrides: tuple[str, ...] = PrivateAttr(default=())

    @property
    def overrides(self) -> tuple[str, ...]:
        """The `--set` arguments the pipeline was loaded with, so errors in the model's own options can name them."""
        return self._overrides


class ScheduleConfig(Strict):
    """Learning rate per step: linear warm-up over `warmup_steps`, then the `decay` curve (a registered name)."""

    decay: str = Field("constant", description="constant, exponential, cosine or inverse_sqrt.")
    warmup_steps: int = Field(0, ge=0)
    half_life_steps: int = Field(1000, ge=1, description="exponential: steps after warm-up to halve the lr.")
    total_steps: int | None = Field(
        None, ge=1, description="cosine (required there): steps after warm-up to reach `min_factor`."
    )
    min_factor: float = Field(0.0, ge=0, le=1, description="cosine: the lr floor, as a share of the base lr.")


class OptimizerConfig(Strict):
    dense: Literal["adam", "adamw", "sgd", "adagrad"] = "adam"
    sparse: Literal["dense_adam", "sparse_adam", "rowwise_adagrad"] = "dense_adam"
    lr: float = Field(1e-3, gt=0)
    sparse_lr: float | None = Field(None, gt=0, description="Embedding lr; defaults to `lr`.")
    weight_decay: float = Field(0.0, ge=0)
    embedding_l2: float = Field(
        0.0, ge=0, description="L2 on the embedding rows a step reads (mean per sample); curbs id memorization."
    )
    embedding_weight_decay: float = Field(
        0.0,
        ge=0,
        description="Weight decay on whole embedding tables (every row, every step; `sparse: dense_adam` only), "
        "beside `weight_decay` for the network.",
    )
    schedule: ScheduleConfig = ScheduleConfig()


class EarlyStopConfig(Strict):
    """Stop when the (smoothed) valid metric has not beaten its best by more than `min_delta` for `patience` evals.

    Smoothing keeps one noisy dip from ending a run; the exported weights are still the best raw evaluation's.
    """

    metric: str = "auc"
    patience: int = Field(2, ge=1)
    min_delta: float = Field(0.0, ge=0, description="Smallest gain of the smoothed metric that counts as better.")
    smoothing: Literal["none", "ema", "mean"] = Field(
        "none", description="ema: exponential moving average; mean: moving mean over `window` evaluations."
    )
    window: int = Field(3, ge=1, description="Evaluations the smoothing spans (ema: alpha = 2 / (window + 1)).")


class CheckpointConfig(Strict):
    """When `recforge train` writes OUT/checkpoint (always at each epoch's end as well)."""

    every_steps: int | None = Field(
        1000,
        ge=1,
        description="Also every N training steps, so a killed run loses at most N steps on --resume (null: "
        "epoch ends only). Dynamic tables evict at each checkpoint, so N is part of such a run's recipe.",
    )


class DistributedConfig(Strict):
    """How several training processes (torchrun) hold the model; one process ignores it."""

    embeddings: str = Field(
        "replicated",
        description="Embedding placement: `replicated` (every process holds every table; DDP averages their "
        "gradients with the dense ones) or a registered sharder such as `torchrec`.",
    )
    torchrec: TorchRecConfig = Field(
        default_factory=TorchRecConfig, description="How TorchRec shards the tables when `embeddings: torchrec`."
    )


class DistillConfig(Strict):
    """Learn from a teacher bundle's scores: (1 - alpha) * label BCE + alpha * T^2 * soft-label BCE at T."""

    teacher: str = Field(description="Teacher bundle directory; it scores every training row once, up front.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the teacher's soft labels (0: labels only).")
    temperature: float = Field(1.0, gt=0, description="Softens both logits before the soft-label loss.")


class TrackingConfig(Strict):
    """Where `recforge train` logs params, per-evaluation metrics and artifacts (off by default)."""

    kind: str = Field("none", description="Experiment tracker: none | mlflow (`pip install 'recforge[mlflow]'`).")
    uri: str | None = Field(
        None, description="Tracking URI (default: sqlite:///RUN_PARENT/mlflow.db, artifacts in RUN_PARENT/mlartifacts)."
    )
    experiment: str | None = Field(None, description="Experiment name (default: the pipeline's `name`).")


class TrainConfig(Strict):
    batch_size: int = Field(2048, ge=1)
    epochs: PositiveInt | Literal["auto"] = Field(5, description="Passes over the data; `auto`: until early stop.")
    max_epochs: int = Field(100, ge=1, description="The cap of `epochs: auto`.")
    max_steps: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1, description="Eval every N steps (default: each epoch).")
    optimizer: OptimizerConfig = OptimizerConfig()
    early_stop: EarlyStopConfig | None = EarlyStopConfig()
    export: Literal["best", "last"] = "best"
    seed: int = 2020
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores).")
    shuffle_buffer: int = Field(8, ge=1, description="Record batches mixed per shuffle when streaming.")
    cache: Literal["auto", "memory", "stream"] = Field(
        "auto", description="memory: keep transformed batches in RAM; stream: re-read each epoch."
    )
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    progress: bool = True
    distill: DistillConfig | None = Field(None, description="Train as a student of a teacher bundle.")
    trainer: str | None = Field(
        None, description="Trainer family (default: the model's own, e.g. sgd); `ftrl` fits `lr` with FTRL-Proximal."
    )
    ftrl: FtrlConfig = FtrlConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    distributed: DistributedConfig = DistributedConfig()
    tracking: TrackingConfig = TrackingConfig()


class EvalConfig(Strict):
    metrics: list[str] = Field(default_factory=lambda: ["auc", "logloss"], description="auc, logloss, gauc@COLUMN")
    batch_size: int = Field(16_384, ge=1)


class TaskConfig(Strict):
    """One objective of a multi-task model: its label column, loss, loss weight and metrics."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Metric prefix (`ctr/auc`) and score name.")
    label: str = Field(description="Label column of the samples (0/1 for bce, any number for mse).")
    loss: Literal["bce", "mse"] = "bce"
    weight: float = Field(1.0, ge=0, description="Weight of this task's loss in the summed loss.")
    metrics: list[str] | None = Field(None, description="Default: eval.metrics (bce) or [mse] (mse).")


class PipelineConfig(Strict):
    """A whole pipeline: where the data is, its features, the model and how to train it."""

    name: str = "recforge"
    data: DataConfig = DataConfig()
    engine: SampleEngine = Field(
        "duckdb", description="What builds the samples: duckdb in this process, or spark (see `spark:`)."
    )
    spark: SparkConfig = SparkConfig()
    embedding_dim: int = Field(16, ge=1, description="Default `dim` for features that give none.")
    features: list[FeatureConfig] = Field(
        default_factory=list, description="Ranking (and two-tower) features; ranking needs at least one."
    )
    model: ModelConfig = ModelConfig()
    tasks: list[TaskConfig] | None = Field(
        None, min_length=1, description="Multi-task objectives; without it one task learns `data.label`."
    )
    rank_by: dict[str, float] | None = Field(
        None, description="Ranking score of a multi-task model: weights of task scores (default: the first task)."
    )
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    recall: RecallConfig | None = Field(None, description="Recall channels, their merge and evaluation.")
    online: OnlineConfig = Field(
        default_factory=OnlineConfig, description="Streaming training (`recforge stream train` / `stream ftrl`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _not_a_retired_ftrl_job(cls, data: Any) -> Any:
        """The FTRL job YAML of before issue 16 (`hasher:` + hyper-parameters) gets the way to the new one."""
        if isinstance(data, dict) and "hasher" in data:
            raise ValueError(
                "`hasher:` is the retired FTRL job format; FTRL now runs a pipeline config: list the hashed columns "
                "under `features:` (kind id with `hash_buckets`, numeric with `boundaries`), set `model: {name: lr}` "
                "and `train: {trainer: ftrl, ftrl: {alpha, beta, l1, l2}}` (see examples/synthetic_ftrl.yaml)"
            )
        return data

    def dump(self) -> dict[str, Any]:
        """Plain-data form for YAML/JSON (what a bundle stores)."""
        return self.model_dump(mode="json", exclude_none=False)
