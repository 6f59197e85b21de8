"""TF-Serving REST routes: predict (row form `instances` or columnar `inputs`) and model status."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from recforge.serving.http.body import off_the_loop, parse_json
from recforge.serving.http.errors import HttpError, responses
from recforge.serving.http.models import RequestModels
from recforge.serving.http.openapi import json_body
from recforge.serving.http.scoring import model_of, score_columns
from recforge.serving.service import Service


def tf_serving_table(body: Any) -> tuple[pa.Table, bool]:
    """A validated predict body as a table, and whether it came in the columnar form."""
    try:
        if body.instances is not None:
            return pa.Table.from_pylist(body.instances), False
        return pa.table({k: pa.array(v if isinstance(v, list) else [v]) for k, v in body.inputs.items()}), True
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise HttpError(400, "bad_input", f"the values do not form a table: {exc}", "instances") from None


def tf_serving_router(service: Service, models: RequestModels) -> APIRouter:
    router = APIRouter(tags=["tf-serving"])
    depth = service.config.limits.max_depth

    def predict(name: str, raw: bytes) -> dict[str, Any]:
        predictor = model_of(service, name)
        table, columnar = tf_serving_table(parse_json(raw, models.v1_predict, depth))
        scores = score_columns(service, predictor, table)
        if not predictor.tasks:
            values = [float(s) for s in scores["score"]]
            return {"outputs": values} if columnar else {"predictions": values}
        if columnar:  # TF Serving's multi-output forms: a list per output, or an object per row
            return {"outputs": {k: [float(x) for x in v] for k, v in scores.items()}}
        return {"predictions": [{k: float(v[i]) for k, v in scores.items()} for i in range(table.num_rows)]}

    @router.post(
        "/v1/models/{name}:predict",
        openapi_extra=json_body(models.v1_predict),
        responses=responses(400, 401, 404, 413, 422),
        summary="Score rows (TF-Serving REST)",
    )
    async def v1_predict(name: str, request: Request) -> JSONResponse:
        return JSONResponse(await off_the_loop(request, lambda raw: predict(name, raw)))

    @router.get("/v1/models/{name}", responses=responses(401, 404, 422))
    async def v1_status(name: str) -> dict[str, Any]:
        predictor = model_of(service, name)
        return {"model_version_status": [{"version": predictor.version, "state": "AVAILABLE", "status": {}}]}

    return router
