"""`recforge data ...`: public datasets by name (on the main app)."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    help="Data: download public datasets, write the synthetic world, split logs by day.", no_args_is_help=True
)


@data_app.callback()
def data_options() -> None:
    """Data: download public datasets, write the synthetic world, split logs by day."""


@data_app.command("list")
def data_list() -> None:
    """The datasets `recforge data get` knows, with their sources."""
    from recforge.data.catalog import DATASETS

    for name in DATASETS.names():
        typer.echo(f"{name:<16} {DATASETS.get(name).url}")


@data_app.command("get")
def data_get(
    name: str = typer.Argument(..., help="Dataset name (see `recforge data list`), e.g. ml-100k."),
    to: Path = typer.Option(Path("data"), "--to", help="Directory to download and unpack into."),
    url: str | None = typer.Option(None, help="A mirror of the archive (the pinned checksum still applies)."),
) -> None:
    """Download NAME (resuming after a dropped connection), verify its checksum, unpack it, print its licence."""
    from recforge.data.catalog import DATASETS, get_dataset

    fetched = get_dataset(DATASETS.get(name, yaml_path="NAME"), to, url=url)
    typer.echo(f"licence: {fetched.dataset.licence}")
    typer.echo(f"{fetched.dataset.name}: {fetched.folder} ({fetched.dataset.checksum[0]} verified)")
    typer.echo(f"use it:  recforge train CONFIG {fetched.dataset.data_block.format(path=fetched.folder)} --out runs/X")


@data_app.command("synthetic")
def data_synthetic(
    out: Path = typer.Option(..., "--out", help="Directory for users.parquet, items.parquet, behavior.parquet."),
    set_: list[str] = typer.Option([], "--set", help="World size, e.g. --set n_impressions=200000 (repeatable)."),
    chunk_rows: int | None = typer.Option(
        None,
        "--chunk-rows",
        min=1,
        help="Write the log chunk by chunk (bounded memory, for 50M+ rows): rows per chunk.",
    ),
) -> None:
    """Write the embedded synthetic world (data.synthetic options) as three Parquet tables."""
    from recforge.config.loader import validate_block
    from recforge.config.schema import SyntheticConfig
    from recforge.data.readers import count_rows, write_parquet
    from recforge.data.synthetic import generate_synthetic
    from recforge.data.synthetic_parquet import write_synthetic_parquet

    cfg = validate_block(SyntheticConfig, {}, overrides=set_)
    if chunk_rows is not None:
        for name, path in write_synthetic_parquet(cfg, out, chunk_rows).items():
            typer.echo(f"{name}: {count_rows(path) or 0:,} rows -> {path}")
        return
    raw = generate_synthetic(cfg)
    for name, table in (("users", raw.users), ("items", raw.items), ("behavior", raw.behavior)):
        if table is not None:
            write_parquet(table, str(out / f"{name}.parquet"))
            typer.echo(f"{name}: {table.num_rows:,} rows -> {out / name}.parquet")


@data_app.command("partition")
def data_partition(
    log: str = typer.Argument(..., help="Behavior log: Parquet/CSV path or fsspec URL."),
    out: str = typer.Option(..., "--out", help="Partition template with {date}, e.g. 'events/dt={date}'."),
    time_column: str = typer.Option("timestamp", help="Epoch seconds or timestamp column that dates each row."),
    marker: str = typer.Option("_SUCCESS", help="Completion marker written into each partition ('' for none)."),
) -> None:
    """Split LOG into one partition per UTC day (part-0.parquet + marker), as the daily pipeline reads them."""
    from recforge.data.partitions import write_partitions
    from recforge.data.readers import read_table

    counts = write_partitions(read_table(log), time_column, out, marker or None)
    first, last = min(counts), max(counts)
    typer.echo(f"{sum(counts.values()):,} rows -> {len(counts)} partitions {first} .. {last} under {out}")
