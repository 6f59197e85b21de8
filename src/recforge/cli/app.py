"""The root `recforge` Typer app and its global options; command modules register on it."""

from __future__ import annotations

import logging

import typer

import recforge
from recforge.cli.failure import set_verbose

app = typer.Typer(help="recforge: from raw logs to a live recommender.", no_args_is_help=True, add_completion=False)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"recforge {recforge.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress at INFO level; show tracebacks."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
    ),
) -> None:
    set_verbose(verbose)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("recforge.progress").setLevel(logging.INFO)  # off a terminal, progress is these lines
    logging.captureWarnings(True)  # third-party warnings take the same one path
