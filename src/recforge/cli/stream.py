"""`recforge stream ...`: replay logs into Redis Streams or Kafka, train, learn FTRL and score on them."""

from __future__ import annotations

from pathlib import Path

import typer

from recforge.cli.options import SET_HELP

stream_app = typer.Typer(
    help="Event streams: replay logs into Redis Streams or Kafka; train on them.", no_args_is_help=True
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
    from recforge.bundle.drift_status import read_drift_status, request_clear

    status = read_drift_status(models)
    request_clear(models)
    shown = "; ".join(status["reasons"]) if status and status.get("alarm") else "no alarm raised"
    typer.echo(f"asked the trainer to clear the drift alarm ({shown})")
