"""`recforge data ...`: public datasets by name (on the main app)."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Data: download public recommendation datasets by name.", no_args_is_help=True)


@data_app.callback()
def data_options() -> None:
    """Data: download public recommendation datasets by name."""


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
