"""What one Studio reads: where the runs, the model stream and the pipeline root are, which service to ask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recforge.errors import ConfigError
from recforge.studio.service_client import ServiceClient


@dataclass(frozen=True)
class Studio:
    runs: Path | None = None  # a directory of run directories
    stream: Path | None = None  # a model stream (versions + LATEST)
    service: ServiceClient | None = None  # the live `recforge serve`
    pipeline: Path | None = None  # a pipeline root holding history.jsonl
    recent: Path | None = None  # recent stream rows (Parquet/CSV) for the features page; default: a run's test split
    admin_token: str | None = None  # rollback needs it; without one rollback is off
    prefix: str = ""  # where the pages are mounted ("" or e.g. "/ui")

    def need(self, value: object, option: str, what: str) -> None:
        """A ConfigError naming the `recforge ui` option when a page needs a source that was not given."""
        if value is None:
            raise ConfigError(option, f"this page needs {what}, and none was given", fix=f"recforge ui {option} ...")
