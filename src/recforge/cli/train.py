"""`recforge quickstart | train | report | tune`: run the main job, (re)write reports, search hyper-parameters."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from recforge.cli.app import app
from recforge.cli.options import BASELINE_HELP, IMPORTANCE_HELP, REPORT_HELP, SET_HELP
from recforge.cli.output import echo_table, print_metrics, print_recall_metrics


@app.command()
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Run directory to write."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run the main job on embedded defaults: synthetic world -> DeepFM and recall channels -> bundles -> demo."""
    from recforge import pipeline

    result = pipeline.quickstart(out, set_)
    typer.echo(f"samples: {result.rank.samples.counts}")
    print_metrics(result.rank.metrics)
    if result.recall is not None:
        print_recall_metrics(result.recall.metrics)
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
    nproc: int = typer.Option(1, min=1, help="Train in N processes on this host through torchrun (DDP over gloo)."),
) -> None:
    """Train the pipeline in CONFIG and export a bundle to OUT/bundle (also when started by torchrun)."""
    from recforge import pipeline
    from recforge.config import load_config

    cfg = load_config(config, set_)
    if nproc > 1:
        from recforge.pipeline.launch import train_processes

        train_processes(cfg, config, out, nproc, set_, resume=resume, warm_start=warm_start)
    else:
        result = pipeline.train(cfg, out, resume=resume, warm_start=warm_start)
        if not result.main:  # another rank of a torchrun launch: rank 0 reports
            return
        print_metrics(result.metrics)
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
    echo_table(result.table.to_pylist(), [c for c in result.table.column_names if c != "error"])
    typer.echo(f"best: trial {result.best_trial} valid {search.objective.metric}={result.best_value:.4f}")
    typer.echo(f"best config: {result.best_config}\nbest run: {result.best_run}")
    typer.echo(f"trials: {result.trials_csv}, {result.trials_parquet}\nreport: {result.report}")
