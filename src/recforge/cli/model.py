"""`recforge model ...`: publish bundles through the validation gate, list versions, roll back."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(
    help="Model streams: publish through the validation gate, list, roll back.", no_args_is_help=True
)


@model_app.command("publish")
def model_publish(
    bundle: Path = typer.Argument(..., help="Bundle directory to publish."),
    stream: Path = typer.Argument(..., help="Model stream directory (created if missing)."),
    holdout: str = typer.Option(..., help="Held-out rows with labels (Parquet/CSV) the gate scores."),
    overrides: list[str] = typer.Option([], "--set", help="Gate option, e.g. --set min_auc=0.7 (repeatable)."),
) -> None:
    """Publish BUNDLE into STREAM if it passes the gate; a rejected version is recorded with its reasons."""
    from recforge.config.gate import GateConfig
    from recforge.config.loader import validate_block
    from recforge.data.readers import read_table
    from recforge.train.gate import publish_gated

    gate = validate_block(GateConfig, {}, overrides=overrides)
    result = publish_gated(bundle, stream, read_table(holdout), gate)
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
