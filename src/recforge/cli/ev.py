"""`recforge ev ...`: embedding variable tools: what a bundle's tables hold, the collisions a hash size gives."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from recforge.cli.output import cell, echo_table

ev_app = typer.Typer(
    help="Embedding variables: what a bundle's tables hold, and the collisions a hash size gives.",
    no_args_is_help=True,
)


@ev_app.callback()
def ev_options() -> None:
    """Embedding variables: what a bundle's tables hold, and the collisions a hash size gives."""


@ev_app.command("inspect")
def inspect(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    feature: str = typer.Option(..., "--feature", help="Id/tag feature whose embedding table to show."),
    out: Path | None = typer.Option(None, "--out", help="Write every row (or the top N) to this Parquet file."),
    top: int | None = typer.Option(None, "--top", min=1, help="Only the first N rows (dynamic: most frequent)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Rows of one embedding table (id/key, frequency, last update, L2 norm, vector) and a summary."""
    import pyarrow.parquet as pq

    from recforge.bundle import load_bundle
    from recforge.pipeline.ev_inspect import inspect_embedding

    loaded = load_bundle(bundle)
    table, summary = inspect_embedding(loaded.model, loaded.features, feature, top=top)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        typer.echo(f"{key}: {cell(value)}")
    shown = min(top or 10, 10)
    typer.echo(f"\nfirst {min(shown, table.num_rows)} of {table.num_rows:,} rows:")
    echo_table(table.slice(0, shown).to_pylist())
    if out is not None:
        typer.echo(f"\n{table.num_rows:,} rows -> {out}")


@ev_app.command("collisions")
def collisions(
    path: str = typer.Argument(..., metavar="FILE", help="Parquet/CSV file or fsspec URL holding the ids."),
    column: str = typer.Option(..., "--column", help="The id column."),
    buckets: list[int] = typer.Option(..., "--buckets", min=2, help="Table size(s) B; repeat for several."),
    hashes: int = typer.Option(1, "--hashes", min=1, max=8, help="1: static hash_buckets; k: multi_hash k tables."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per size."),
) -> None:
    """Share of distinct ids that share their bucket (or, with --hashes k, their k-bucket signature)."""
    from recforge.data.readers import read_table
    from recforge.pipeline.ev_inspect import collision_rates

    rates = collision_rates(read_table(path, columns=[column])[column], buckets, hashes)
    rows = rates.to_pylist()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    echo_table(rows)
