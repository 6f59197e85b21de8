"""Check the data a config names before any work starts: every path exists and is readable, and (on request)
the first batch of each file parses with the config's options."""

from __future__ import annotations

import logging

import pyarrow.fs as pafs

from recforge.config.schema import DataConfig
from recforge.config.tables import TableFile
from recforge.data.criteo import iter_criteo
from recforge.data.readers import is_delimited, iter_batches, resolve
from recforge.data.sources import load_source
from recforge.data.tablefile import BadLines, csv_options
from recforge.errors import DataError

log = logging.getLogger(__name__)

PROBE_ROWS = 256


def data_files(cfg: DataConfig) -> list[tuple[str, str]]:
    """(YAML path, file or directory) of every file `cfg` reads; the synthetic source reads none."""
    if cfg.source in ("movielens", "criteo"):
        return [("data.path", cfg.path)] if cfg.path else []
    if cfg.source == "samples":
        return [(f"data.{name}", getattr(cfg, name)) for name in ("train", "valid", "test") if getattr(cfg, name)]
    if cfg.source == "tables" and cfg.tables is not None:
        specs = ((name, getattr(cfg.tables, name)) for name in ("behavior", "users", "items"))
        # a catalog table is Spark's to find: engine spark checks it exists before any work
        return [(f"data.tables.{name}", spec.path) for name, spec in specs if isinstance(spec, TableFile)]
    return []


def check_readable(path: str, yaml_path: str) -> None:
    """DataError naming `yaml_path` unless `path` exists and one byte (or the listing) of it can be read."""
    fs, inner = resolve(path)
    try:
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise DataError(
                f"{yaml_path}: {path} does not exist\n  fix: check the path (relative paths resolve against "
                "the working directory), or get a public dataset with `recforge data get ml-100k --to DIR`"
            )
        if info.type == pafs.FileType.Directory:
            fs.get_file_info(pafs.FileSelector(inner))
        else:
            with fs.open_input_stream(inner) as stream:
                stream.read(1)
    except OSError as exc:
        raise DataError(f"{yaml_path}: {path} cannot be read: {exc}\n  fix: check its permissions") from None


def check_data(cfg: DataConfig, read: bool = False) -> list[str]:
    """Check every data path; with `read`, parse the first rows of each (a directory source loads once).

    Returns one line per path for the caller to show.
    """
    lines = []
    for yaml_path, path in data_files(cfg):
        check_readable(path, yaml_path)
        lines.append(f"{yaml_path}: {path} readable")
    if not read:
        return lines
    if cfg.source == "movielens":  # several files in one of three layouts: the loader knows them
        raw = load_source(cfg)
        return [*lines, f"data.path: read {raw.summary()} rows, behavior columns {raw.behavior.column_names}"]
    for yaml_path, path in data_files(cfg):
        if cfg.source == "criteo":
            batch = next(iter_criteo(path, batch_rows=PROBE_ROWS))
        else:
            spec = getattr(cfg.tables, yaml_path.rsplit(".", 1)[1], None) if cfg.source == "tables" else None
            bad = BadLines() if spec is not None and spec.bad_lines == "skip" else None
            options = csv_options(spec, yaml_path, bad) if spec is not None and is_delimited(path) else None
            batch = next(iter(iter_batches(path, batch_rows=PROBE_ROWS, csv=options)))
        lines.append(f"{yaml_path}: first {batch.num_rows} rows parse, columns {batch.schema.names}")
    return lines
