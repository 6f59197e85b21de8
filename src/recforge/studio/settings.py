"""What one Studio reads: where the runs, the model stream and the pipeline root are, which service to ask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from recforge.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module at start: keep urllib out of it
    from recforge.studio.service_client import ServiceClient

T = TypeVar("T")
TOKEN_ENV = "RECFORGE_ADMIN_TOKEN"  # the rollback admin token, unless `recforge ui --admin-token-env` names another
MOUNT = "/ui"  # where `recforge serve --ui` mounts the Studio (its links are built for it)


@dataclass(frozen=True)
class Studio:
    runs: Path | None = None  # a directory of run directories
    stream: Path | None = None  # a model stream (versions + LATEST)
    service: ServiceClient | None = None  # the live `recforge serve`
    pipeline: Path | None = None  # a pipeline root holding history.jsonl
    recent: Path | None = None  # recent stream rows (Parquet/CSV) for the features page; default: a run's test split
    admin_token: str | None = None  # rollback needs it; without one rollback is off
    prefix: str = ""  # where the pages are mounted ("" or e.g. "/ui")

    @staticmethod
    def need(value: T | None, option: str, what: str) -> T:
        """`value`, or a ConfigError naming the `recforge ui` option when a page needs a source not given."""
        if value is None:
            raise ConfigError(option, f"this page needs {what}, and none was given", fix=f"recforge ui {option} ...")
        return value
