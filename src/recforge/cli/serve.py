"""`recforge predict | serve`: score a file with a bundle, or serve a bundle / model stream over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from recforge.cli.app import app
from recforge.studio.settings import MOUNT

if TYPE_CHECKING:
    from recforge.config.serving import HttpConfig


@app.command()
def predict(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    input_path: str = typer.Argument(..., metavar="INPUT", help="Parquet/CSV file or fsspec URL to score."),
    out: Path = typer.Option(..., help="Parquet file to write."),
    keep: str = typer.Option("", help="Comma-separated input columns to copy into the output."),
) -> None:
    """Score INPUT with BUNDLE; writes the kept columns plus `score` (and `score_TASK` per task, multi-task)."""
    from recforge.bundle import predict_file

    counts = predict_file(bundle, input_path, out, keep=[c for c in keep.split(",") if c])
    typer.echo(f"scored {counts['rows']:,} rows -> {out}")
    defaults = {k: v for k, v in counts.items() if k != "rows"}
    if defaults:
        typer.echo(f"values mapped to defaults: {defaults}")


@app.command()
def serve(
    model: Path = typer.Argument(..., help="Ranking bundle, or a model stream directory (versions + LATEST)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Serving YAML (default: serving.yaml in MODEL or beside it)."
    ),
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a serving config value, e.g. --set backend=onnx."),
    ui: bool = typer.Option(False, "--ui", help="Mount the Studio at /ui (rollback needs RECFORGE_ADMIN_TOKEN)."),
    ui_runs: Path | None = typer.Option(None, help="With --ui: the directory of run directories to show."),
    ui_pipeline: Path | None = typer.Option(None, help="With --ui: the pipeline root (history.jsonl) to show."),
) -> None:
    """Serve /recommend, KServe v2 and TF-Serving inference with hot model swaps (FastAPI + uvicorn)."""
    from recforge.config.serving import find_serving_config, load_serving_config
    from recforge.serving.http.run import check_bindable, check_mountable, run_service
    from recforge.serving.service import build_service

    file = config or find_serving_config(model)
    settings = [*overrides, *([f"http.host={host}"] if host else []), *([f"http.port={port}"] if port else [])]
    cfg = load_serving_config(file, settings)
    check_bindable(cfg.http.host, cfg.http.port)
    check_mountable(cfg, [MOUNT] if ui else None)
    service = build_service(model, cfg)  # also when workers > 1: a bad config or bundle fails here, once
    typer.echo(
        f"serving {service.predictor.name} version {service.predictor.version} on http://{cfg.http.host}:{cfg.http.port}"
        f" with {cfg.http.workers} worker(s) (config: {file or 'defaults'}; watching {model}: {cfg.watch.enabled})"
    )
    run_service(model, service, cfg, _studio_mount(model, cfg.http, ui_runs, ui_pipeline) if ui else None)


def _studio_mount(model: Path, http: HttpConfig, runs: Path | None, pipeline: Path | None) -> dict[str, Any]:
    """`--ui`: the Studio over the served stream and this very service, to mount at /ui."""
    from recforge.serving.http.app import api_key_of
    from recforge.studio.app import create_studio, mounted_studio

    studio = mounted_studio(model, http.host, http.port, api_key_of(http), runs, pipeline)
    rollback = "on" if studio.admin_token else "off: set RECFORGE_ADMIN_TOKEN"
    typer.echo(f"studio on http://{http.host}:{http.port}{MOUNT}/ (rollback {rollback})")
    return {MOUNT: create_studio(studio)}
