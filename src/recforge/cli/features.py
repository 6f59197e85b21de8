"""`recforge features ...`: push tables to the store, search crosses, measure importance."""

from __future__ import annotations

from pathlib import Path

import typer

features_app = typer.Typer(
    help="Features: push tables to the feature store, search crosses, measure importance.", no_args_is_help=True
)


@features_app.callback()
def features_options() -> None:
    """Features: push tables to the feature store, search crosses, measure importance."""


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


@features_app.command("autocross")
def autocross(
    config: Path = typer.Argument(..., help="Pipeline YAML whose features to cross."),
    out: Path = typer.Option(..., "--out", help="Where to write CONFIG (with --set applied) plus the chosen crosses."),
    set_: list[str] = typer.Option([], "--set", help="Override a value of CONFIG by dotted path (repeatable)."),
    max_crosses: int = typer.Option(5, min=1, help="Accept at most this many crosses."),
    max_order: int = typer.Option(3, min=2, help="Most features in one cross (greedy: accepted crosses grow by one)."),
    min_uplift: float = typer.Option(0.001, help="Accept a cross only if it raises the proxy's AUC this much."),
    rows: int = typer.Option(200_000, min=100, help="Train and valid rows sampled for the proxy model."),
    criterion: str = typer.Option(
        "unseen_users", help="Score crosses on users held out of the proxy's fit (unseen_users) or on valid rows."
    ),
    holdout_share: float = typer.Option(0.3, min=0.01, max=0.99, help="Share of users unseen_users holds out."),
    holdout_key: str = typer.Option("user_id", help="User column of the samples that unseen_users holds out by."),
    work: Path | None = typer.Option(None, help="Directory for the samples (default: a temporary one)."),
) -> None:
    """Search pairwise and higher-order crosses with a field-wise LR proxy; write the accepted ones into OUT."""
    import tempfile

    import yaml

    from recforge.config import build_config
    from recforge.config.loader import apply_override, load_tree
    from recforge.pipeline.autocross import autocross as search
    from recforge.pipeline.autocross import with_crosses
    from recforge.train.autocross import SearchOptions

    tree = load_tree(config)
    for assignment in set_:
        apply_override(tree, assignment)
    cfg = build_config(tree, file=str(config))
    options = SearchOptions(
        max_crosses=max_crosses,
        max_order=max_order,
        min_uplift=min_uplift,
        criterion=criterion,
        holdout_share=holdout_share,
        holdout_key=holdout_key,
    )
    with tempfile.TemporaryDirectory(prefix="recforge-autocross-") as tmp:
        run = search(cfg, work or tmp, options, rows=rows)
    result = run.result
    typer.echo(f"proxy: field-wise LR on {run.rows['train']:,} train / {run.rows['valid']:,} valid rows")
    typer.echo(f"candidates: {', '.join(run.candidates)}")
    typer.echo(f"base proxy AUC {result.base_auc:.4f} (criterion {criterion})")
    first = sorted((t for t in result.trials if t.round == 1), key=lambda t: -t.uplift)[:5]
    typer.echo("best pairs of round 1: " + ", ".join(f"{'_x_'.join(t.inputs)} {t.uplift:+.4f}" for t in first))
    for a, entry in zip(result.accepted, run.crosses, strict=True):
        typer.echo(
            f"accepted {entry['name']}: uplift {a.uplift:+.4f}, proxy AUC {a.auc:.4f}, "
            f"{a.cells:,} combinations, buckets {entry['buckets']:,}"
        )
    new_tree = with_crosses(tree, run.crosses)
    build_config(new_tree, file=str(out))  # the written config must load
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(new_tree, sort_keys=False))
    typer.echo(f"{len(run.crosses)} cross(es) -> {out} (proxy AUC {result.base_auc:.4f} -> {result.final_auc:.4f})")


@features_app.command("importance")
def importance(
    bundle: Path = typer.Argument(..., help="Bundle directory (or model stream: its current version)."),
    data: str = typer.Option(..., "--data", help="Labelled eval data (Parquet/CSV path or fsspec URL)."),
    out: Path = typer.Option(..., "--out", help="Directory for importance.csv, importance.json, importance.png."),
    repeats: int = typer.Option(5, min=1, help="Shuffles per feature (mean and std of the AUC drop)."),
    rows: int = typer.Option(100_000, min=100, help="Eval rows sampled (all when fewer)."),
    seed: int = typer.Option(0, help="Seed of the row sample, the shuffles and the dropout masks."),
    dropout: bool = typer.Option(True, "--dropout/--no-dropout", help="Also learn per-feature dropout rates."),
    dropout_steps: int = typer.Option(300, min=1, help="Steps of dropout-rate learning."),
    dropout_penalty: float = typer.Option(1e-3, min=0, help="Loss charged per kept feature in dropout learning."),
) -> None:
    """Permutation importance (AUC drop when a feature is shuffled) and learned dropout rates of BUNDLE on DATA."""
    from recforge.pipeline.importance import feature_importance
    from recforge.train.importance import DropoutOptions

    options = DropoutOptions(steps=dropout_steps, penalty=dropout_penalty, seed=seed) if dropout else None
    run = feature_importance(bundle, data, out, repeats=repeats, rows=rows, seed=seed, dropout=options)
    typer.echo(f"baseline AUC {run.baseline_auc:.4f} on {run.rows:,} rows, {run.repeats} shuffle(s) per feature")
    width = max(len("feature"), *(len(f.feature) for f in run.fields))
    typer.echo(f"{'rank':>4}  {'feature':<{width}}  {'importance':>10}  {'std':>8}  {'drop_rate':>9}")
    for f in run.fields:
        rate = "-" if f.drop_rate is None else f"{f.drop_rate:.3f}"
        typer.echo(f"{f.rank:>4}  {f.feature:<{width}}  {f.importance:>10.5f}  {f.std:>8.5f}  {rate:>9}")
    typer.echo(f"table: {run.csv}\nchart: {run.chart}")
