"""`recforge config ...`: print the JSON Schema of the pipeline YAML, validate a config."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from recforge.cli.options import SET_HELP

config_app = typer.Typer(help="Inspect and validate pipeline configs.", no_args_is_help=True)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the pipeline YAML (for editors)."""
    from recforge.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=1))


@config_app.command("check")
def config_check(
    file: Path = typer.Argument(..., help="Pipeline YAML."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    data: bool = typer.Option(False, "--data", help="Also parse the first rows of every data file."),
) -> None:
    """Validate FILE (and overrides) and check its data paths are readable, without running anything."""
    from recforge import pipeline
    from recforge.config import load_config
    from recforge.data.probe import check_data

    cfg = load_config(file, set_)
    data_lines = check_data(cfg.data, read=data)
    if cfg.features or cfg.recall is None:
        pipeline.check(cfg)
    parts = [f"{len(cfg.features)} features, model {cfg.model.name}"] if cfg.features else []
    if cfg.recall is not None:
        pipeline.check_recall(cfg)
        parts.append(f"recall channels {[c.name for c in cfg.recall.channels]}")
    typer.echo(f"{file}: ok ({'; '.join(parts)})")
    for line in data_lines:
        typer.echo(f"  {line}")
