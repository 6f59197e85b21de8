"""What the v1 and v2 inference routes share: finding the served model and scoring a table of rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recforge.serving.http.errors import HttpError
from recforge.serving.predictor import Predictor
from recforge.serving.service import Service


def model_of(service: Service, name: str) -> Predictor:
    """The served predictor when `name` is its name; a 404 otherwise."""
    predictor = service.predictor
    if name != predictor.name:
        message = f"model {name!r} is not served here; this service serves {predictor.name!r}"
        raise HttpError(404, "not_found", message, "name")
    return predictor


def score_columns(service: Service, predictor: Predictor, table: pa.Table) -> dict[str, np.ndarray]:
    """`score` (the ranking score) and, for a multi-task model, each task's score."""
    limit = service.config.http.max_candidates
    if table.num_rows > limit:
        message = f"{table.num_rows} rows; at most {limit} per request (http.max_candidates)"
        raise HttpError(413, "too_many_rows", message)
    missing = [c for c in predictor.input_columns if c not in table.column_names]
    if missing:
        message = f"inputs {missing} are missing; the model reads {predictor.input_columns}"
        raise HttpError(400, "bad_input", message, "inputs")
    by_task = predictor.score_table_tasks(table)
    return {"score": predictor.rank(by_task), **{t: by_task[t] for t in predictor.tasks}}
