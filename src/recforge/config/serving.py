"""The `serving:` config: what `recforge serve` loads, how it recalls and ranks, and how it listens.

Relative paths are resolved against the directory of the file that holds the config (the serving
YAML, or the bundle whose config carries a `serving:` block), so a served directory can be moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from recforge.config.features import Strict
from recforge.config.loader import load_tree, validate_block
from recforge.config.request_log import LoggingConfig

SERVING_FILE = "serving.yaml"


class HttpConfig(Strict):
    """Where the service listens. Loopback by default: exposing it is a deliberate choice."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(
        None, description="When set, every request but health must send it as `X-API-Key` (or `Authorization: Bearer`)."
    )
    api_key_env: str | None = Field(None, description="Read the API key from this environment variable instead.")
    max_candidates: int = Field(100_000, ge=1, description="Larger candidate lists get a 413, not a slow answer.")
    max_k: int = Field(1_000, ge=1)
    scoring_threads: int = Field(
        1,
        ge=1,
        description="Threads of one server process that parse and score requests, off its event loop (which keeps "
        "answering health checks). One keeps the tail short: more threads only fight over the GIL.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Server processes sharing the port; each loads the models, watches for swaps and keeps its "
        "own /metrics counters. Use one per core a request should not wait for.",
    )


class LimitsConfig(Strict):
    """What one request may hold; anything beyond gets a 4xx before it costs memory or CPU."""

    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Request bodies above this get a 413 (raise it for big v2 batches)."
    )
    max_depth: int = Field(
        32, ge=4, le=1000, description="JSON nested deeper than this is rejected before it is parsed."
    )
    max_items: int = Field(1_000, ge=1, description="Longest `recent_items` and `exclude` list of /recommend.")
    max_fields: int = Field(
        64, ge=1, description="Most keys in `context` and `filters`, inputs of a v2 request, columns of a v1 row."
    )
    max_values: int = Field(1_000, ge=1, description="Most values of one `filters` entry.")
    max_string: int = Field(1_024, ge=1, description="Longest string id, value or name in a request.")


class WatchConfig(Strict):
    """Hot swap: poll the model directory and load a new version off the request path."""

    enabled: bool = True
    poll_seconds: float = Field(1.0, gt=0)


class RecommendConfig(Strict):
    """The /recommend pipeline: recall depth, how many candidates get ranked, what is filtered."""

    k: int = Field(10, ge=1, description="Items returned when the request gives no `k`.")
    candidates: int = Field(500, ge=1, description="Merged recall candidates handed to the ranker.")
    history_column: str | None = Field(
        None,
        description="User-table list column with the user's recent items (newest last). Default: the items "
        "the request sends as `recent_items`, else the user's training history in the recall bundle.",
    )
    recent_items: int = Field(50, ge=1, description="At most this many recent items seed the i2i channels.")
    exclude_seen: bool = Field(True, description="Drop items the user has interacted with (history + recent).")


class ServingConfig(Strict):
    """Everything `recforge serve` needs beside the ranking bundle itself."""

    recall: str | None = Field(None, description="Recall bundle directory (`recforge recall train --out`).")
    store: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "embedded"},
        description="Feature store options (kind: embedded | redis, entities with their table path and key); "
        "validated by the store registry.",
    )
    backend: Literal["torch", "onnx"] = Field("torch", description="Dense-part runtime of the ranking model.")
    threads: int = Field(1, ge=1, description="Intra-op threads per request (1 keeps tail latency flat).")
    recommend: RecommendConfig = RecommendConfig()
    http: HttpConfig = HttpConfig()
    limits: LimitsConfig = LimitsConfig()
    watch: WatchConfig = WatchConfig()
    logging: LoggingConfig = LoggingConfig()


def _resolve_paths(tree: dict[str, Any], base: Path) -> None:
    """Make `recall` and every `path` inside `store` and `logging` absolute, relative to the config file's directory."""
    if isinstance(tree.get("recall"), str):
        tree["recall"] = str((base / tree["recall"]).resolve()) if "://" not in tree["recall"] else tree["recall"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "path" and isinstance(value, str) and "://" not in value:
                    node[key] = str((base / value).resolve())
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree.get("store"))
    walk(tree.get("logging"))


def find_serving_config(model_path: str | Path) -> Path | None:
    """`serving.yaml` inside the served directory, else beside it (where quickstart writes it)."""
    base = Path(model_path)
    for candidate in (base / SERVING_FILE, base.parent / SERVING_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_serving_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ServingConfig:
    """Read (or default), override with `--set`, validate; relative paths resolve against the file."""
    tree: dict[str, Any] = {}
    file = ""
    if path is not None:
        tree = load_tree(path)
        file = str(path)
        _resolve_paths(tree, Path(path).resolve().parent)
    return validate_block(ServingConfig, tree, file, overrides)
