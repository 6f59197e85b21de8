"""`recforge pipeline ...`: the daily pipeline of DAILY.yaml: run a date, one step, a backfill, a scheduler,
or export it as an Airflow DAG."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from recforge.config.daily import DailyConfig
    from recforge.pipeline.daily import DayResult

pipeline_app = typer.Typer(
    help="Daily pipeline: wait for a partition, samples, warm-started training, gate, publish, recall, push.",
    no_args_is_help=True,
)
DAILY_HELP = "DAILY.yaml (see examples/daily/)."
SET_HELP = "Override a value of DAILY.yaml by dotted path, e.g. retry.attempts=5 (repeatable)."


@pipeline_app.callback()
def pipeline_options() -> None:
    """Daily pipeline: wait for a partition, samples, warm-started training, gate, publish, recall, push."""


def _load(daily: Path, overrides: list[str]) -> DailyConfig:
    """DAILY.yaml and the pipeline YAML it names, both checked before any step runs (errors exit 2)."""
    from recforge.config.daily import load_daily
    from recforge.pipeline.daily.runner import check_daily

    cfg = load_daily(daily, overrides)
    check_daily(cfg)
    return cfg


def _echo_day(result: DayResult) -> None:
    for entry in result.entries:
        note = f"  ({entry.error.splitlines()[0]})" if entry.error else ""
        typer.echo(f"{entry.date} {entry.step:<8} {entry.status:<7} attempt {entry.attempt}{note}")
    for entry in result.final():
        if entry.status == "failed":
            typer.echo(f"error: {entry.date} {entry.step}: {entry.error}", err=True)


@pipeline_app.command("run")
def run(
    daily: Path = typer.Argument(..., help=DAILY_HELP),
    date: str = typer.Option(..., "--date", help="The date to run, YYYY-MM-DD."),
    force: bool = typer.Option(False, "--force", help="Rerun steps already done for the date."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run every step of DAILY for one date; exits 1 when a step failed after its retries."""
    from recforge.config.daily import parse_date
    from recforge.pipeline.daily import SystemClock, run_day

    result = run_day(_load(daily, set_), parse_date(date, "--date"), SystemClock(), force=force)
    _echo_day(result)
    if not result.ok:
        raise typer.Exit(1)


@pipeline_app.command("step")
def step(
    daily: Path = typer.Argument(..., help=DAILY_HELP),
    name: str = typer.Option(..., "--step", help="wait | samples | train | gate | publish | recall | push."),
    date: str = typer.Option(..., "--date", help="The date, YYYY-MM-DD (Airflow passes {{ ds }})."),
    force: bool = typer.Option(False, "--force", help="Rerun it even if it is done for the date."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run one step for one date (what each task of the exported Airflow DAG calls)."""
    from recforge.config.daily import parse_date
    from recforge.pipeline.daily import DayResult, SystemClock, run_step

    day = parse_date(date, "--date")
    entries = run_step(_load(daily, set_), name, day, SystemClock(), force=force)
    _echo_day(DayResult(day, entries))
    if entries[-1].status == "failed":
        raise typer.Exit(1)


@pipeline_app.command("backfill")
def backfill(
    daily: Path = typer.Argument(..., help=DAILY_HELP),
    first: str = typer.Option(..., "--from", help="First date, YYYY-MM-DD."),
    last: str = typer.Option(..., "--to", help="Last date (inclusive), YYYY-MM-DD."),
    force: bool = typer.Option(False, "--force", help="Rerun steps already done (outputs rebuilt)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run every date from --from to --to in order; a later date's live model is never replaced by an older one."""
    from recforge.config.daily import parse_date
    from recforge.pipeline.daily import SystemClock
    from recforge.pipeline.daily import backfill as run_backfill

    cfg = _load(daily, set_)
    results = run_backfill(cfg, parse_date(first, "--from"), parse_date(last, "--to"), SystemClock(), force=force)
    for result in results:
        _echo_day(result)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@pipeline_app.command("schedule")
def schedule(
    daily: Path = typer.Argument(..., help=DAILY_HELP),
    first: str | None = typer.Option(None, "--from", help="First date (default: after the history's last)."),
    until: str | None = typer.Option(None, "--until", help="Stop after this date (default: run forever)."),
    once: bool = typer.Option(False, "--once", help="Run the dates whose partitions are ready now, then stop."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run each new date when its partition appears (polling every partitions.poll_s), on this machine."""
    from recforge.config.daily import parse_date
    from recforge.pipeline.daily import SystemClock
    from recforge.pipeline.daily import schedule as run_schedule

    start = parse_date(first, "--from") if first else None
    stop = parse_date(until, "--until") if until else None
    run_schedule(_load(daily, set_), SystemClock(), start=start, until=stop, once=once, on_day=_echo_day)


@pipeline_app.command("export-airflow")
def export_airflow(
    daily: Path = typer.Argument(..., help=DAILY_HELP),
    out: Path = typer.Option(..., "--out", help="DAG file to write (put it in Airflow's dags folder)."),
    recforge: str | None = typer.Option(
        None, help="Command the tasks run (default: this Python's `-m recforge`, so Airflow's venv needs no recforge)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Write an Airflow DAG whose tasks run `recforge pipeline step DAILY --step NAME --date {{ ds }}`."""
    from recforge.pipeline.daily import render_dag
    from recforge.pipeline.daily.airflow import dag_id

    cfg = _load(daily, set_)
    command = shlex.split(recforge) if recforge else [sys.executable, "-m", "recforge"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_dag(cfg, daily, command, Path.cwd()))
    typer.echo(f"DAG {dag_id(cfg, daily)} ({', '.join(cfg.steps)}) -> {out}")
