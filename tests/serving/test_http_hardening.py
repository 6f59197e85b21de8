"""The served app as an attacker meets it: every bad input of issue 15 is a 4xx in the one error shape
(never a 500), bodies and lists are capped, scoring runs off the event loop, the OpenAPI document is
complete enough for a fuzzer, `/docs` works offline and metrics are labelled by route template."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pyarrow as pa
import pytest
import test_http
import uvicorn
from test_http import Run, model_name

from recforge.config.serving import load_serving_config
from recforge.errors import DataError
from recforge.serving.http import create_app
from recforge.serving.recommender import Catalog, RecommendRequest
from recforge.serving.service import build_service

from support import REPO, Server, free_port

sys.path.insert(0, str(REPO / "bench"))
from api_fuzz import error_shaped, fuzz

run = test_http.run  # the module's trained run and its `recforge serve` process (fixtures)
server = test_http.server
BIG = 2**63  # one past int64's maximum
DEEP = 100_000


def refused(resp: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Assert the exact status and the one error shape; return the error object."""
    assert resp.status_code == status, resp.text
    assert error_shaped(resp.content), resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    return error


# ------------------------------------------------------------------ /recommend
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": BIG}, "user_id"),
        ({"user_id": -BIG - 1}, "user_id"),
        ({"user_id": 10**30}, "user_id"),
        ({"user_id": 1, "context": {"position": BIG}}, "context.position"),
        ({"user_id": 1, "filters": {"category_id": BIG}}, "filters.category_id"),
        ({"user_id": 1, "filters": {"category_id": [1, -BIG - 1]}}, "filters.category_id"),
        ({"user_id": 1, "recent_items": [BIG]}, "recent_items.0"),
        ({"user_id": 1, "recent_items": list(range(1_001))}, "recent_items"),
        ({"user_id": 1, "exclude": list(range(1_001))}, "exclude"),
        ({"user_id": 1, "filters": {f"c{i}": 1 for i in range(65)}}, "filters"),
        ({"user_id": 1, "filters": {"category_id": list(range(1_001))}}, "filters.category_id"),
        ({"user_id": "x" * 1_025}, "user_id"),
        ({"user_id": True}, "user_id"),
    ],
)
def test_recommend_out_of_range_and_over_long_input_is_a_422(server: Server, body: dict[str, Any], field: str) -> None:
    error = refused(server.post("/recommend", json=body), 422, "invalid_request", field)
    assert field.split(".")[0] in error["message"]


def test_recommend_in_range_extremes_still_answer(server: Server) -> None:
    edge = {"user_id": BIG - 1, "k": 3, "recent_items": list(range(1_000)), "filters": {"category_id": -BIG}}
    resp = server.post("/recommend", json=edge)
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == [] and resp.json()["user_known"] is False  # no item has that category


def test_catalog_filters_beyond_int64_are_a_data_error() -> None:
    catalog = Catalog(pa.table({"item_id": [1, 2, 3], "category_id": [7, 7, 8]}), "item_id")
    assert catalog.mask({"category_id": [7]}).tolist() == [True, True, False]
    for value in (10**30, [7, -(2**63) - 1]):
        with pytest.raises(DataError, match="filter on 'category_id'"):
            catalog.mask({"category_id": value})


def test_deep_json_is_refused_before_parsing(server: Server) -> None:
    name = model_name(server)
    deep = b"[" * DEEP + b"]" * DEEP
    for url, body in [
        ("/recommend", b'{"user_id": 1, "context": {"a": ' + deep + b"}}"),
        (f"/v2/models/{name}/infer", b'{"inputs": ' + deep + b"}"),
        (f"/v1/models/{name}:predict", b'{"instances": ' + b"[" * DEEP),
    ]:
        error = refused(server.post(url, content=body), 400, "too_deep")
        assert "at most 32 (serving.yaml limits.max_depth)" in error["message"]
    brackets_in_strings = {"user_id": "[" * 5_000, "k": 2}
    assert refused(server.post("/recommend", json=brackets_in_strings), 422, "invalid_request", "user_id")


def test_bodies_over_the_limit_get_a_413_declared_or_streamed(server: Server) -> None:
    twelve_mb = b'{"user_id": 1, "exclude": [' + b"1," * 6_000_000 + b"1]}"
    refused(server.post("/recommend", content=twelve_mb), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while the body streams in
        yield b'{"user_id": 1, "exclude": ['
        for _ in range(120):
            yield b"1," * 50_000
        yield b"1]}"

    refused(server.post("/recommend", content=chunks()), 413, "body_too_large")
    assert server.get("/v2/health/live").status_code == 200


# ------------------------------------------------------------------ KServe v2
def v2_ok(name: str = "user_id") -> dict[str, Any]:
    return {"name": name, "shape": [2], "datatype": "INT64", "data": [1, 2]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": [v2_ok()], "parameters": [1]}, "parameters"),
        ({"inputs": [{**v2_ok(), "parameters": [1]}]}, "inputs.0.parameters"),
        ({"inputs": [v2_ok()], "outputs": 5}, "outputs"),
        ({"inputs": [{**v2_ok(), "parameters": {"binary_data_size": "abc"}}]}, "inputs.0.parameters.binary_data_size"),
        ({"inputs": [{**v2_ok(), "parameters": {"binary_data_size": [1]}}]}, "inputs.0.parameters.binary_data_size"),
        ({"inputs": [{**v2_ok(), "shape": [-1]}]}, "inputs.0.shape.0"),
        ({"inputs": [{**v2_ok(), "datatype": "COMPLEX"}]}, "inputs.0.datatype"),
        ({"inputs": [v2_ok(f"c{i}") for i in range(65)]}, "inputs"),
        ({"inputs": []}, "inputs"),
    ],
)
def test_v2_malformed_requests_are_a_422(server: Server, body: dict[str, Any], field: str) -> None:
    refused(server.post(f"/v2/models/{model_name(server)}/infer", json=body), 422, "invalid_request", field)


def test_v2_data_beyond_its_datatype_is_a_400(server: Server) -> None:
    url = f"/v2/models/{model_name(server)}/infer"
    for datatype, value in [("INT64", BIG), ("INT64", -BIG - 1), ("INT8", 300), ("FP64", 10**400), ("INT64", {})]:
        spec = {**v2_ok(), "datatype": datatype, "data": [1, value]}
        error = refused(server.post(url, json={"inputs": [spec]}), 400, "bad_input")
        assert f"data is not {datatype}" in error["message"]


def binary_request(server: Server, head: dict[str, Any], buffers: bytes, length: int | None = None) -> httpx.Response:
    header = json.dumps(head).encode()
    size = str(len(header) if length is None else length)
    url = f"/v2/models/{model_name(server)}/infer"
    return server.post(url, content=header + buffers, headers={"Inference-Header-Content-Length": size})


def test_v2_binary_buffers_of_the_wrong_size_are_a_400(server: Server) -> None:
    spec = {"name": "user_id", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 5}}
    error = refused(binary_request(server, {"inputs": [spec]}, b"\x01" * 5), 400, "bad_input")
    assert "not INT64" in error["message"]
    spec["parameters"] = {"binary_data_size": 16}
    error = refused(binary_request(server, {"inputs": [spec]}, b"\x01" * 8), 400, "bad_input")
    assert "only 8 body bytes are left" in error["message"]
    spec["parameters"] = {"binary_data_size": 8}
    error = refused(binary_request(server, {"inputs": [spec]}, b"\x01" * 12), 400, "bad_input")
    assert "4 body bytes follow the last binary input" in error["message"]
    refused(binary_request(server, {"inputs": [spec]}, b"\x01" * 8, length=10**6), 400, "bad_input")
    bad_header = server.post(
        f"/v2/models/{model_name(server)}/infer", content=b"{}", headers={"Inference-Header-Content-Length": "abc"}
    )
    refused(bad_header, 422, "invalid_request")


# ------------------------------------------------------------------ TF-Serving v1
def test_v1_out_of_range_and_malformed_bodies_are_4xx(server: Server) -> None:
    url = f"/v1/models/{model_name(server)}:predict"
    refused(server.post(url, json={"instances": [{"user_id": BIG}]}), 422, "invalid_request", "instances.0.user_id")
    refused(server.post(url, json={"inputs": {"user_id": [1, -BIG - 1]}}), 422, "invalid_request", "inputs.user_id")
    refused(server.post(url, json={"instances": [{"user_id": 1}], "inputs": {"user_id": 1}}), 422, "invalid_request")
    refused(server.post(url, json={"instances": [{"a": 1}, {"a": "x"}]}), 400, "bad_input")
    refused(server.post(url, content=b"\xff\xfe"), 400, "malformed_json")


# ------------------------------------------------------------------ one shape for every 4xx
def test_routing_errors_share_the_shape_and_metrics_label_route_templates(server: Server) -> None:
    refused(server.get("/some_random_path"), 404, "not_found")
    refused(server.get("/another/random/path"), 404, "not_found")
    refused(server.get("/recommend"), 405, "method_not_allowed")
    refused(server.post("/v2/models/nope/infer", json={"inputs": [v2_ok()]}), 404, "not_found", "name")
    refused(server.get("/v1/models/nope"), 404, "not_found", "name")
    name = model_name(server)
    assert server.get(f"/v2/models/{name}/ready").status_code == 200
    text = server.get("/metrics").text
    assert 'recforge_requests_total{endpoint="unmatched",status="404"}' in text
    assert 'recforge_requests_total{endpoint="/recommend",status="405"}' in text
    assert 'recforge_requests_total{endpoint="/v2/models/{name}/ready",status="200"}' in text
    assert "random" not in text and f"/v2/models/{name}" not in text
    assert 'recforge_errors_total{endpoint="unmatched",kind="not_found"}' in text


# ------------------------------------------------------------------ OpenAPI and /docs
def test_openapi_documents_request_bodies_and_every_4xx(server: Server) -> None:
    doc = server.get("/openapi.json").json()
    bodies = {
        ("/recommend", "post"): "RecommendBody",
        ("/v2/models/{name}/infer", "post"): "InferRequest",
        ("/v2/models/{name}/versions/{version}/infer", "post"): "InferRequest",
        ("/v1/models/{name}:predict", "post"): "PredictBody",
    }
    for (path, method), model in bodies.items():
        operation = doc["paths"][path][method]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
        for status in ("400", "413", "422"):
            error = operation["responses"][status]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ApiError"}
    recommend = doc["components"]["schemas"]["RecommendBody"]["properties"]
    assert recommend["recent_items"]["maxItems"] == 1_000
    assert {"minimum": -(2**63), "maximum": 2**63 - 1, "type": "integer"} in recommend["user_id"]["anyOf"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_docs_render_from_package_assets_without_a_cdn(server: Server) -> None:
    page = server.get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assets = resources.files("recforge.serving.http") / "assets"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        resp = server.get(f"/docs/assets/{name}")
        assert resp.status_code == 200 and resp.content == (assets / name).read_bytes()
    assert "Apache License" in (assets / "LICENSE").read_text()


# ------------------------------------------------------------------ fuzzing
def test_schemathesis_and_mutated_bodies_never_get_a_500_or_an_unshaped_4xx(server: Server) -> None:
    report = fuzz(server.url, 400, seed=15)
    assert report.violations == [], report.table()
    assert report.total >= 400
    statuses = {status for _, status in report.counts}
    assert 200 in statuses and {400, 404, 422} <= statuses, report.table()


# ------------------------------------------------------------------ scoring off the event loop
def test_health_answers_while_a_request_is_being_scored(run: Run) -> None:
    """The scoring thread is held on an Event: /health must still answer, then the held request finishes."""
    service = build_service(run.stream, load_serving_config(run.serving, ["watch.enabled=false"]))
    entered, release = threading.Event(), threading.Event()
    recommend = service.recommender.recommend

    def held(request: RecommendRequest) -> Any:
        entered.set()
        release.wait(120)
        return recommend(request)

    service.recommender.recommend = held  # type: ignore[method-assign]
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=uv.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    answers: list[httpx.Response] = []
    try:
        while not uv.started:
            entered.wait(0.05)
        heavy = threading.Thread(target=lambda: answers.append(httpx.post(url + "/recommend", json={"user_id": 1})))
        heavy.start()
        assert entered.wait(60), "the request never reached the scorer"
        live = httpx.get(url + "/v2/health/live", timeout=60)
        assert live.status_code == 200 and answers == [], "health answered while the scorer was still held"
        release.set()
        heavy.join(120)
        assert len(answers) == 1 and answers[0].status_code == 200, answers
    finally:
        release.set()
        uv.should_exit = True


def test_a_missing_api_key_is_a_401_in_the_error_shape_counted_under_its_route(run: Run) -> None:
    from fastapi.testclient import TestClient

    config = load_serving_config(run.serving, ["watch.enabled=false", "http.api_key=s3cret"])
    client = TestClient(create_app(build_service(run.stream, config)))
    refused(client.post("/recommend", json={"user_id": 1}), 401, "unauthorized")
    refused(client.post("/nowhere", json={}), 401, "unauthorized")
    text = client.get("/metrics", headers={"X-API-Key": "s3cret"}).text
    assert 'recforge_requests_total{endpoint="/recommend",status="401"} 1.0' in text
    assert 'recforge_requests_total{endpoint="unmatched",status="401"} 1.0' in text
