"""`recforge skew ...`: train/serve skew from a service's request log ."""

from __future__ import annotations

import json
from pathlib import Path

import typer

skew_app = typer.Typer(help="Train/serve skew: replay logged requests through the batch path.", no_args_is_help=True)


@skew_app.callback()
def skew_options() -> None:
    """Train/serve skew: replay logged requests through the batch path."""


@skew_app.command("check")
def check(
    bundle: Path = typer.Argument(..., help="The served bundle, or the model stream holding every logged version."),
    request_log: Path = typer.Argument(..., help="The request log: its .jsonl file or its directory."),
    out: Path | None = typer.Option(None, "--out", help="Also write the full report as JSON here."),
    tolerance: float = typer.Option(1e-6, min=0.0, help="Largest |online - batch| score difference that passes."),
) -> None:
    """Replay logged requests through `FeatureSet.transform` and the model; exit 1 on any mismatch."""
    from recforge.serving.skew import check_skew

    report = check_skew(bundle, request_log, tolerance)
    typer.echo(f"replayed {report.records:,} requests, {report.rows:,} rows")
    for reason, count in report.skipped.items():
        typer.echo(f"skipped {count:,} records: {reason}")
    width = max([len("feature"), *(len(n) for n in report.features)])
    typer.echo(f"{'feature':<{width}}  {'rows':>10}  {'mismatches':>10}  example")
    for name, skew in report.features.items():
        example = "" if skew.example is None else json.dumps(skew.example, default=str)
        typer.echo(f"{name:<{width}}  {skew.rows:>10,}  {skew.mismatches:>10,}  {example}")
    typer.echo(f"max |score difference|: {report.max_score_diff:.3g} (tolerance {tolerance:g})")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_json(), indent=2, default=str))
        typer.echo(f"report: {out}")
    if report.records == 0:
        typer.echo("SKEW CHECK FAILED: no record could be replayed (see the skipped counts above)")
        raise typer.Exit(1)
    if not report.ok:
        skewed = ", ".join(report.skewed) or "none"
        typer.echo(f"SKEW: features with mismatches: {skewed}; max score difference {report.max_score_diff:.3g}")
        raise typer.Exit(1)
    typer.echo("no skew")
