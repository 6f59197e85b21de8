"""The `recforge` command: parses arguments, calls the library, prints results. No logic lives here."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

from recforge.cli_ev import ev_app
from recforge.cli_features import features_app
from recforge.errors import ConfigError, RecforgeError

app = typer.Typer(help="recforge: from raw logs to a live recommender.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Inspect and validate pipeline configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
stream_app = typer.Typer(
    help="Event streams: replay logs into Redis Streams or Kafka; train on them.", no_args_is_help=True
)
app.add_typer(stream_app, name="stream")
model_app = typer.Typer(
    help="Model streams: publish through the validation gate, list, roll back.", no_args_is_help=True
)
app.add_typer(model_app, name="model")
recall_app = typer.Typer(help="Recall: candidate generation channels, their merge and i2i jobs.", no_args_is_help=True)
app.add_typer(recall_app, name="recall")
app.add_typer(features_app, name="features")
app.add_typer(ev_app, name="ev")

SET_HELP = "Override a config value by dotted path, e.g. --set train.optimizer.lr=0.01 (repeatable)."
REPORT_HELP = "Write OUT/report.html (learning curves, metrics, config diff; self-contained, offline)."
BASELINE_HELP = "Baseline pipeline YAML the report diffs the config against (implies --report)."
IMPORTANCE_HELP = "Feature-importance table (CSV/Parquet/JSON: feature, importance) for the report."


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.callback()
def main_options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress at INFO level.")) -> None:
    _setup_logging(verbose)


def _print_metrics(metrics: dict[str, object]) -> None:
    for split in ("valid", "test"):
        values = metrics.get(split) or {}
        assert isinstance(values, dict)
        shown = "  ".join(
            f"{k}={v:.4f}" for k, v in values.items() if (isinstance(v, float) and "loss" not in k) or k == "logloss"
        )
        typer.echo(f"{split:>5}: {shown}")
    train = metrics.get("train")
    if isinstance(train, dict):
        typer.echo(f"train: {train['samples_per_s']:,.0f} samples/s over {train['steps']} steps")


@app.command()
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Run directory to write."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run the main job on embedded defaults: synthetic world -> DeepFM and recall channels -> bundles -> demo."""
    from recforge import pipeline

    result = pipeline.quickstart(out, set_)
    typer.echo(f"samples: {result.rank.samples.counts}")
    _print_metrics(result.rank.metrics)
    if result.recall is not None:
        _print_recall_metrics(result.recall.metrics)
    for user, table in result.demo.items():
        items = ", ".join(
            f"{i}({s:.3f})" for i, s in zip(table.column(0).to_pylist(), table["score"].to_pylist(), strict=True)
        )
        typer.echo(f"top items for user {user}: {items}")
    typer.echo(f"bundle: {result.rank.bundle}\nmetrics: {result.rank.out_dir / 'metrics.json'}")
    if result.recall is not None:
        typer.echo(f"recall bundle: {result.recall.bundle}")
    if result.serving is not None and result.requests:
        typer.echo(f"\nserve it:  recforge serve {result.rank.bundle}   (reads {result.serving})")
        request, answer = result.requests[0], result.answers[0]
        typer.echo(
            "then:      curl -s localhost:8000/recommend -H 'content-type: application/json'"
            f" -d '{json.dumps(request)}'"
        )
        typer.echo(f"answer (computed in process by the same service code): {json.dumps(answer)}")
    out_dir, events = result.rank.out_dir, "redis://127.0.0.1:6379/0?stream=events"
    typer.echo(
        "\nkeep it learning from an event stream (needs a redis-server on 6379):\n"
        f"  recforge model publish {result.rank.bundle} {out_dir}/models --holdout {result.rank.samples.test}\n"
        f"  recforge stream produce {result.rank.samples.test} --to '{events}'\n"
        f"  recforge stream train {out_dir}/config.yaml --source '{events}&group=trainer' --models {out_dir}/models"
        f" --work {out_dir}/stream --set online.publish_every_rows=5000\n"
        f"  recforge serve {out_dir}/models          # follows the stream, applies delta versions"
    )


@app.command()
def train(
    config: Path = typer.Argument(..., help="Pipeline YAML."),
    out: Path = typer.Option(..., help="Run directory (bundle, metrics.json, evals.jsonl, checkpoint)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint."),
    warm_start: Path | None = typer.Option(None, help="Start from this bundle's features and weights."),
    report: bool = typer.Option(False, help=REPORT_HELP),
    baseline: Path | None = typer.Option(None, help=BASELINE_HELP),
    importance: Path | None = typer.Option(None, help=IMPORTANCE_HELP),
) -> None:
    """Train the pipeline in CONFIG and export a bundle to OUT/bundle."""
    from recforge import pipeline
    from recforge.config import load_config

    cfg = load_config(config, set_)
    result = pipeline.train(cfg, out, resume=resume, warm_start=warm_start)
    _print_metrics(result.metrics)
    typer.echo(f"bundle: {result.bundle}\nmetrics: {result.out_dir / 'metrics.json'}")
    if report or baseline is not None or importance is not None:
        typer.echo(f"report: {_run_report(out, baseline, importance)}")


def _run_report(run: Path, baseline: Path | None, importance: Path | None) -> Path:
    from recforge.config.loader import load_tree
    from recforge.train.report import run_report

    base = load_tree(baseline) if baseline is not None else None
    return run_report(run, baseline=base, baseline_name=str(baseline or "baseline"), importance=importance)


@app.command()
def report(
    run: Path = typer.Argument(..., help="Run directory of `recforge train` (metrics.json, evals.jsonl)."),
    baseline: Path | None = typer.Option(None, help=BASELINE_HELP),
    importance: Path | None = typer.Option(None, help=IMPORTANCE_HELP),
) -> None:
    """(Re)write RUN/report.html for a finished training run."""
    typer.echo(f"report: {_run_report(run, baseline, importance)}")


@app.command()
def tune(
    config: Path = typer.Argument(..., help="Base pipeline YAML."),
    space: Path = typer.Option(..., help="Search-space YAML: params (dotted path -> range), objective, pruner."),
    out: Path = typer.Option(..., help="Study directory: trials/NNNN runs, best.yaml, trials.csv, report.html."),
    trials: int = typer.Option(20, min=1, help="Trials the study should hold in total (a rerun resumes)."),
    jobs: int = typer.Option(1, min=1, help="Trials run at once, each in its own process."),
    study_db: str | None = typer.Option(None, help="SQLite file or database URL of the study (default OUT/study.db)."),
    study_name: str | None = typer.Option(None, help="Study name in the database (default: the config's name)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    importance: Path | None = typer.Option(None, help=IMPORTANCE_HELP),
) -> None:
    """Search CONFIG's hyper-parameters with Optuna on the valid split; write the best config and a report."""
    from recforge.config.loader import apply_override, load_tree
    from recforge.config.tune import load_space
    from recforge.pipeline.tune import tune as run_tune

    tree = load_tree(config)
    for assignment in set_:
        apply_override(tree, assignment)
    search = load_space(space)
    result = run_tune(
        tree, search, out, trials, jobs=jobs, study_db=study_db, study_name=study_name, importance=importance
    )
    rows = result.table.to_pylist()
    columns = [c for c in result.table.column_names if c != "error"]
    widths = {c: max(len(c), *(len(_short(r[c])) for r in rows)) for c in columns}
    typer.echo("  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        typer.echo("  ".join(_short(r[c]).rjust(widths[c]) for c in columns))
    typer.echo(f"best: trial {result.best_trial} valid {search.objective.metric}={result.best_value:.4f}")
    typer.echo(f"best config: {result.best_config}\nbest run: {result.best_run}")
    typer.echo(f"trials: {result.trials_csv}, {result.trials_parquet}\nreport: {result.report}")


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


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
) -> None:
    """Serve /recommend, KServe v2 and TF-Serving inference with hot model swaps (FastAPI + uvicorn)."""
    import uvicorn

    from recforge.config.serving import find_serving_config, load_serving_config
    from recforge.serving.http import create_app
    from recforge.serving.http.app import CONFIG_ENV, MODEL_ENV
    from recforge.serving.service import build_service

    file = config or find_serving_config(model)
    settings = [*overrides, *([f"http.host={host}"] if host else []), *([f"http.port={port}"] if port else [])]
    cfg = load_serving_config(file, settings)
    service = build_service(model, cfg)  # also when workers > 1: a bad config or bundle fails here, once
    typer.echo(
        f"serving {service.predictor.name} version {service.predictor.version} on http://{cfg.http.host}:{cfg.http.port}"
        f" with {cfg.http.workers} worker(s) (config: {file or 'defaults'}; watching {model}: {cfg.watch.enabled})"
    )
    options: dict[str, Any] = {"host": cfg.http.host, "port": cfg.http.port, "log_level": "warning"}
    if cfg.http.workers == 1:
        uvicorn.run(create_app(service), access_log=False, **options)
        return
    service.stop()
    os.environ[MODEL_ENV], os.environ[CONFIG_ENV] = str(model.resolve()), cfg.model_dump_json()
    uvicorn.run(
        "recforge.serving.http.app:app_from_env", factory=True, workers=cfg.http.workers, access_log=False, **options
    )


@stream_app.command("produce")
def stream_produce(
    table: str = typer.Argument(..., metavar="FILE", help="Parquet/CSV log (path or fsspec URL)."),
    to: str = typer.Option(..., "--to", help="redis://HOST:PORT/DB?stream=NAME or kafka://BROKERS/TOPIC"),
    rate: float | None = typer.Option(None, help="Events per second (default: as fast as possible)."),
    time_column: str = typer.Option("timestamp", help="Replay order; '' keeps the file order."),
    limit: int | None = typer.Option(None, help="Only the first N rows (after ordering)."),
) -> None:
    """Replay FILE into a stream in timestamp order at --rate events/s."""
    from recforge.data.readers import read_table
    from recforge.data.streams import produce

    data = read_table(table)
    if limit is not None:
        data = data.slice(0, limit) if not time_column else data.sort_by(time_column).slice(0, limit)
    report = produce(data, to, rate=rate, time_column=time_column or None)
    typer.echo(f"produced {report.rows:,} events to {to} in {report.seconds:.1f} s ({report.rate:,.0f}/s)")


@stream_app.command("train")
def stream_train(
    config: Path = typer.Argument(..., help="Pipeline YAML (features, model, train, online)."),
    source: str = typer.Option(..., "--source", help="redis://HOST:PORT/DB?stream=NAME&group=G or kafka://..."),
    models: Path = typer.Option(..., "--models", help="Model stream directory to publish into (created)."),
    work: Path = typer.Option(..., "--work", help="Checkpoints and fitted features (resumed when present)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    until_idle: float | None = typer.Option(None, help="Stop after the stream is idle this many seconds."),
    max_rows: int | None = typer.Option(None, help="Stop after training this many rows in total."),
) -> None:
    """Train CONFIG's model on an event stream; checkpoint with offsets; publish through the gate."""
    from recforge.config import load_config
    from recforge.online.stream_trainer import StreamTrainer

    cfg = load_config(config, set_)
    report = StreamTrainer(cfg, source, models, work).run(until_idle_s=until_idle, max_rows=max_rows)
    typer.echo(
        f"trained {report.samples:,} rows in total ({report.skipped:,} re-delivered rows skipped) in "
        f"{report.seconds:.1f} s; published {len(report.published)}, rejected {len(report.rejected)}, "
        f"drift alarms {report.alarms}"
    )


@stream_app.command("ftrl")
def stream_ftrl(
    config: Path = typer.Argument(..., help="Pipeline YAML: model lr, train.trainer ftrl, online block."),
    source: str = typer.Option(..., "--source", help="redis://... or kafka://... event stream."),
    models: Path = typer.Option(..., "--models", help="Model stream directory to publish FTRL versions into."),
    work: Path = typer.Option(..., "--work", help="Checkpoint directory (resumed when present)."),
    until_idle: float | None = typer.Option(None, help="Stop after the stream is idle this many seconds."),
    max_rows: int | None = typer.Option(None, help="Stop after learning this many rows in total."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """FTRL-Proximal over lr on an event stream, exactly once, publishing bundles into a model stream."""
    from recforge.config import load_config
    from recforge.online.ftrl_stream import FtrlStreamJob

    cfg = load_config(config, set_)
    report = FtrlStreamJob(cfg, source, models, work).run(until_idle_s=until_idle, max_rows=max_rows)
    typer.echo(
        f"learned {report.samples:,} rows in total ({report.skipped:,} re-delivered rows skipped); "
        f"progressive AUC {report.auc:.4f}; published {len(report.published)}, held {report.held}"
    )


@stream_app.command("predict")
def stream_predict(
    models: Path = typer.Argument(..., help="Model stream (or bundle) whose served version scores the rows."),
    source: str = typer.Option(..., "--source", help="Event stream to score."),
    to: str = typer.Option(..., "--to", help="Stream the rows + score + model_version are written to."),
    until_idle: float | None = typer.Option(None, help="Stop after the source is idle this many seconds."),
    max_rows: int | None = typer.Option(None, help="Stop after scoring this many rows."),
) -> None:
    """Score an event stream with the version MODELS serves (followed as it moves) into another stream."""
    from recforge.online.stream_predict import predict_stream

    report = predict_stream(models, source, to, until_idle_s=until_idle, max_rows=max_rows)
    typer.echo(f"scored {report.rows:,} rows with versions {', '.join(report.versions)}")


@stream_app.command("clear-drift")
def stream_clear_drift(
    models: Path = typer.Argument(..., help="Model stream directory the trainer publishes to."),
) -> None:
    """Lower a raised drift alarm: the trainer resumes publishing at its next batch."""
    from recforge.online.status import read_drift_status, request_clear

    status = read_drift_status(models)
    request_clear(models)
    shown = "; ".join(status["reasons"]) if status and status.get("alarm") else "no alarm raised"
    typer.echo(f"asked the trainer to clear the drift alarm ({shown})")


@model_app.command("publish")
def model_publish(
    bundle: Path = typer.Argument(..., help="Bundle directory to publish."),
    stream: Path = typer.Argument(..., help="Model stream directory (created if missing)."),
    holdout: str = typer.Option(..., help="Held-out rows with labels (Parquet/CSV) the gate scores."),
    overrides: list[str] = typer.Option([], "--set", help="Gate option, e.g. --set min_auc=0.7 (repeatable)."),
) -> None:
    """Publish BUNDLE into STREAM if it passes the gate; a rejected version is recorded with its reasons."""
    from recforge.config.gate import GateConfig
    from recforge.config.loader import apply_override, validate_block
    from recforge.data.readers import read_table
    from recforge.train.gate import publish_gated

    tree: dict[str, Any] = {}
    for assignment in overrides:
        apply_override(tree, assignment)
    result = publish_gated(bundle, stream, read_table(holdout), validate_block(GateConfig, tree, "--set"))
    shown = "  ".join(f"{k}={result.metrics[k]:.4f}" for k in ("auc", "logloss") if k in result.metrics)
    if not result.passed:
        typer.echo(f"rejected {result.version}: {shown}\n  " + "\n  ".join(result.reasons))
        raise typer.Exit(1)
    typer.echo(f"published {result.version} -> {result.published}: {shown}")
    if result.pruned:
        typer.echo(f"pruned old versions: {', '.join(result.pruned)}")


@model_app.command("list")
def model_list(stream: Path = typer.Argument(..., help="Model stream directory.")) -> None:
    """Versions in STREAM (the served one marked), then rejected versions with their reasons."""
    from recforge.bundle.stream import current, rejections, versions

    served = current(stream).path.name
    for path in versions(stream):
        typer.echo(f"{'*' if path.name == served else ' '} {path.name}")
    for rejected in rejections(stream):
        typer.echo(f"x {rejected['version']}: {'; '.join(map(str, rejected['reasons']))}")  # type: ignore[call-overload]


@model_app.command("importance")
def model_importance(bundle: Path = typer.Argument(..., help="Bundle (or model stream) of a tree model.")) -> None:
    """Per-feature split gain and split count of BUNDLE's trees, largest gain first."""
    from recforge.bundle.importance import feature_importance
    from recforge.models.trees import importance_table

    typer.echo(importance_table(feature_importance(bundle)))


@model_app.command("rollback")
def model_rollback(
    stream: Path = typer.Argument(..., help="Model stream directory."),
    to: str | None = typer.Option(None, help="Version to serve (default: the newest older one that passed the gate)."),
    force: bool = typer.Option(False, "--force", help="Serve it even if its recorded gate verdict did not pass."),
) -> None:
    """Point the stream's LATEST back; followers swap to it within their poll interval."""
    from recforge.bundle.stream import rollback

    typer.echo(f"now serving {rollback(stream, to, force=force)}")


def _print_recall_metrics(metrics: dict[str, Any], ks: tuple[int, ...] = (10, 50)) -> None:
    names = ("recall", "ndcg", "mrr", "hit", "precision")
    rows = [(name, values) for name, values in metrics["channels"].items()] + [("merged", metrics)]
    header = "  ".join(f"{m}@{k}".rjust(12) for k in ks for m in names)
    typer.echo(f"{'test':>12}  {header}")
    for name, values in rows:
        test = values.get("test") or values.get("valid") or {}
        typer.echo(
            f"{name:>12}  " + "  ".join(f"{test.get(f'{m}@{k}', float('nan')):12.4f}" for k in ks for m in names)
        )


@recall_app.command("train")
def recall_train(
    config: Path = typer.Argument(..., help="Pipeline YAML with a `recall:` block."),
    out: Path = typer.Option(..., help="Run directory (recall bundle, metrics.json, per-channel metrics)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Fit every recall channel in CONFIG, evaluate each and the merged list, save OUT/recall."""
    from recforge import pipeline
    from recforge.config import load_config

    result = pipeline.recall_train(load_config(config, set_), out)
    _print_recall_metrics(result.metrics)
    typer.echo(f"recall bundle: {result.bundle}\nmetrics: {result.out_dir / 'metrics.json'}")


@recall_app.command("eval")
def recall_eval(
    run: Path = typer.Argument(..., help="Run directory of `recforge recall train`."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Re-evaluate a recall run's bundle on the data its config names (e.g. --set data.path=...)."""
    from recforge import pipeline

    metrics = pipeline.recall_eval(run, set_)
    _print_recall_metrics(metrics)
    typer.echo(json.dumps({k: metrics[k] for k in ("valid", "test") if k in metrics}, indent=1))


@recall_app.command("i2i")
def recall_i2i(
    input_path: str = typer.Argument(..., metavar="INPUT", help="Behavior table: Parquet/CSV path or fsspec URL."),
    out: str = typer.Option(..., help="Output file (Parquet or CSV by --format)."),
    config: Path | None = typer.Option(None, help="YAML of i2i options (method, similarity, top_n, engine...)."),
    set_: list[str] = typer.Option([], "--set", help="Override an i2i option, e.g. --set method=swing (repeatable)."),
    fmt: str = typer.Option(
        "parquet", "--format", help="parquet | csv (long: id, similar id, score, rank) or text_parquet | text_csv."
    ),
) -> None:
    """Warehouse-style i2i job: per item its top-N similar items (ItemCF / Swing), or per user (UserCF)."""
    from recforge import pipeline

    if fmt not in ("parquet", "csv", "text_parquet", "text_csv"):
        raise ConfigError("--format", f"unknown format {fmt!r}", fix="use parquet, csv, text_parquet or text_csv")
    cfg = pipeline.i2i_config(config, set_)
    stats = pipeline.run_i2i_job(input_path, out, cfg, fmt)  # type: ignore[arg-type]
    typer.echo(json.dumps(stats, indent=1, default=str))
    typer.echo(f"{stats['output_rows']:,} rows -> {out}")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the pipeline YAML (for editors)."""
    from recforge.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=1))


@config_app.command("check")
def config_check(
    file: Path = typer.Argument(..., help="Pipeline YAML."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Validate FILE (and overrides) without running anything."""
    from recforge import pipeline
    from recforge.config import load_config

    cfg = load_config(file, set_)
    if cfg.features or cfg.recall is None:
        pipeline.check(cfg)
    parts = [f"{len(cfg.features)} features, model {cfg.model.name}"] if cfg.features else []
    if cfg.recall is not None:
        pipeline.check_recall(cfg)
        parts.append(f"recall channels {[c.name for c in cfg.recall.channels]}")
    typer.echo(f"{file}: ok ({'; '.join(parts)})")


def main() -> None:
    """Entry point: RecforgeErrors become a one-paragraph message and exit code 2, not a traceback."""
    try:
        code = app(standalone_mode=False)  # click returns a command's typer.Exit code in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except RecforgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
