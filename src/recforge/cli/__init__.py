"""The `recforge` command: parses arguments, calls the library, prints results. No logic lives here.

One module per command group; `main` is the console-script entry point (`recforge.cli:main`).
"""

from __future__ import annotations

from recforge.cli import serve, train, ui  # noqa: F401 - registers the top-level commands on `app`
from recforge.cli.app import app
from recforge.cli.config import config_app
from recforge.cli.data import data_app
from recforge.cli.ev import ev_app
from recforge.cli.failure import run
from recforge.cli.features import features_app
from recforge.cli.model import model_app
from recforge.cli.pipeline import pipeline_app
from recforge.cli.recall import recall_app
from recforge.cli.skew import skew_app
from recforge.cli.stream import stream_app

app.add_typer(config_app, name="config")
app.add_typer(stream_app, name="stream")
app.add_typer(model_app, name="model")
app.add_typer(recall_app, name="recall")
app.add_typer(features_app, name="features")
app.add_typer(ev_app, name="ev")
app.add_typer(skew_app, name="skew")
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: usage errors exit 2 in one line, RecforgeErrors print their message, never a traceback."""
    run(app)
