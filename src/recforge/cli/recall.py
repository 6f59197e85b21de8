"""`recforge recall ...`: fit and evaluate recall channels, and the warehouse-style i2i job."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from recforge.cli.options import SET_HELP
from recforge.cli.output import print_recall_metrics
from recforge.errors import ConfigError

recall_app = typer.Typer(help="Recall: candidate generation channels, their merge and i2i jobs.", no_args_is_help=True)


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
    print_recall_metrics(result.metrics)
    typer.echo(f"recall bundle: {result.bundle}\nmetrics: {result.out_dir / 'metrics.json'}")


@recall_app.command("eval")
def recall_eval(
    run: Path = typer.Argument(..., help="Run directory of `recforge recall train`."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Re-evaluate a recall run's bundle on the data its config names (e.g. --set data.path=...)."""
    from recforge import pipeline

    metrics = pipeline.recall_eval(run, set_)
    print_recall_metrics(metrics)


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
