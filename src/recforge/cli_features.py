"""`recforge features ...`: feature-store commands (registered on the main app in `recforge.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

features_app = typer.Typer(
    help="Feature store: push user and item tables where the service reads them.", no_args_is_help=True
)


@features_app.callback()
def features_options() -> None:
    """Feature store: push user and item tables where the service reads them."""


@features_app.command("push")
def push(
    config: Path | None = typer.Argument(
        None, help="Pipeline YAML: its data source (synthetic, movielens, tables) gives the user and item tables."
    ),
    redis_url: str = typer.Option(..., "--redis", help="Redis URL, e.g. redis://127.0.0.1:6379/0."),
    users: str | None = typer.Option(None, help="User table: Parquet file/dir or CSV (path or fsspec URL)."),
    user_key: str | None = typer.Option(None, help="Key column of the user table (default: the config's or user_id)."),
    items: str | None = typer.Option(None, help="Item table: Parquet file/dir or CSV (path or fsspec URL)."),
    item_key: str | None = typer.Option(None, help="Key column of the item table (default: the config's or item_id)."),
    prefix: str = typer.Option("recforge", help="Namespace: rows land at PREFIX:ENTITY:KEY."),
    batch_rows: int = typer.Option(1_000, min=1, help="Rows per pipelined write."),
    ttl: int | None = typer.Option(None, "--ttl", min=1, help="Expire the pushed rows after this many seconds."),
    set_: list[str] = typer.Option([], "--set", help="Override a value of CONFIG by dotted path (repeatable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar (only on a terminal)."),
) -> None:
    """Push user and item tables to Redis for `recforge serve` (rows with a null key are counted and skipped)."""
    from recforge.serving.store import StoreOptions, entity_sources, push_entities

    sources = entity_sources(config, set_, users=users, user_key=user_key, items=items, item_key=item_key)
    options = StoreOptions(kind="redis", url=redis_url, prefix=prefix, batch_rows=batch_rows, ttl_s=ttl)
    for report in push_entities(sources, options, progress=progress):
        typer.echo(report.summary())
