"""What every sample engine computes, written once: the joins, the label rule and the label checks.

The plan only writes SQL and reads small results through a `SqlEngine` (DuckDB or Spark), so both
engines join, drop, label and count the same rows. Input relations: `behavior` (with ROW, the behavior
row number) and optionally `users` / `items`; the result is the relation `labelled`. The common SQL
subset a rule may use on both engines is in docs/sql_subset.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recforge.config.schema import DataConfig, LabelRule, SplitConfig
from recforge.data.plan_tally import Tally
from recforge.data.sql_engine import SqlEngine, duckdb_accepts
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ROW = "__row"  # behavior row number: fixes the output order and names rows in errors
SUBSET_DOC = "docs/sql_subset.md"


@dataclass(frozen=True)
class Side:
    """One side table to join: its relation name (`users` / `items`), key and columns."""

    name: str
    key: str
    columns: list[str]


def select_list(engine: SqlEngine, columns: Sequence[str], replace: dict[str, str] | None = None) -> str:
    """`columns` quoted, with `replace[name]` (SQL) in place of some of them."""
    q = engine.dialect.quote
    return ", ".join(f"{replace[c]} AS {q(c)}" if replace and c in replace else q(c) for c in columns)


def _require(columns: Sequence[str], key: str, what: str, origin: str) -> None:
    if key not in columns:
        raise DataError(
            f"{origin}: {what} has no key column {key!r}; it has {list(columns)}"
            "\n  fix: set `data.tables.user_key` / `item_key` to the shared key column"
        )


def _check_unique(engine: SqlEngine, side: Side, origin: str) -> None:
    """Duplicate keys in a side table would multiply behavior rows, so they are an error."""
    key = engine.dialect.quote(side.key)
    dup = engine.rows(
        f"SELECT {key}, count(*) AS n FROM {side.name} WHERE {key} IS NOT NULL "
        f"GROUP BY {key} HAVING count(*) > 1 ORDER BY n DESC, {key} LIMIT 1"
    )
    if dup:
        raise DataError(
            f"{origin}: the {side.name} table has duplicate {side.key!r} values "
            f"(e.g. {dup[0][0]!r} appears {dup[0][1]} times), "
            "so joining would duplicate behavior rows\n  fix: deduplicate the table on its key"
        )


def _side_join(
    engine: SqlEngine, side: Side, taken: dict[str, tuple[str, str]], kinds: dict[str, str], origin: str
) -> tuple[str, str]:
    """(select list, join clause) of one side table; its columns join `taken` (a taken name gets `user_`/`item_`)."""
    q = engine.dialect.quote
    alias = side.name[0]
    select = []
    for column in side.columns:
        if column == side.key:
            continue
        out = column
        while out in taken or out == ROW:
            out = side.name[:-1] + "_" + out
        if out != column:
            log.warning(
                "%s: column %r of the %s table is renamed %r (the name is taken)", origin, column, side.name, out
            )
        taken[out] = (side.name, column)
        select.append(f"{alias}.{q(column)} AS {q(out)}")
    left, right = f"b.{q(side.key)}", f"{alias}.{q(side.key)}"
    if kinds[f"behavior.{side.key}"] != kinds[f"{side.name}.{side.key}"]:
        log.info("%s: joining %s on %r as text (types differ)", origin, side.name, side.key)
        left, right = f"CAST({left} AS STRING)", f"CAST({right} AS STRING)"
    hit = f"__{side.name}_hit"
    select.append(f"{alias}.{hit} IS NOT NULL AS {hit}")
    return ", ".join(select), f"LEFT JOIN (SELECT *, TRUE AS {hit} FROM {side.name}) {alias} ON {left} = {right}"


def join(
    engine: SqlEngine, sides: Sequence[Side], origin: str, counts: dict[str, int], tally: Tally
) -> dict[str, tuple[str, str]]:
    """Create `joined` (behavior LEFT JOIN each side); its unmatched rows are counted by `tally`.

    Returns its columns, each with where it comes from: (relation, column there).
    """
    behavior = list(engine.columns("SELECT * FROM behavior"))
    kinds = {f"behavior.{c}": kind for c, (kind, _) in engine.columns("SELECT * FROM behavior").items()}
    taken = {c: ("behavior", c) for c in behavior}
    selects, joins = ["b.*"], []
    for side in sides:
        _require(behavior, side.key, "the behavior table", origin)
        _require(side.columns, side.key, f"the {side.name} table", origin)
        _check_unique(engine, side, origin)
        kinds |= {f"{side.name}.{c}": kind for c, (kind, _) in engine.columns(f"SELECT * FROM {side.name}").items()}
        select, clause = _side_join(engine, side, taken, kinds, origin)
        selects.append(select)
        joins.append(clause)
    engine.create("joined", f"SELECT {', '.join(selects)} FROM behavior b {' '.join(joins)}", keep=True)
    for side in sides:
        _count_unmatched(engine, side, origin, counts, tally)
    return taken


def _count_unmatched(engine: SqlEngine, side: Side, origin: str, counts: dict[str, int], tally: Tally) -> None:
    hit, key = f"__{side.name}_hit", engine.dialect.quote(side.key)
    tally.add(
        [f"count(*) FILTER (WHERE NOT {hit})", f"min({key}) FILTER (WHERE NOT {hit})"],
        lambda values: _record_unmatched(side, origin, counts, *values),
    )


def _record_unmatched(side: Side, origin: str, counts: dict[str, int], missing: int, example: Any) -> None:
    counts[f"{side.name}_unmatched"] = int(missing)
    if missing:
        log.warning(
            "%s: %s of %s behavior rows have no match in the %s table (e.g. %s=%r); their %s columns are null",
            origin,
            f"{missing:,}",
            f"{counts['raw']:,}",
            side.name,
            side.key,
            example,
            side.name[:-1],
        )


def check_expression(engine: SqlEngine, expr: str, relation: str, yaml_path: str) -> None:
    """Bind `expr` to `relation`'s columns and require a boolean, so mistakes surface with their YAML path."""
    try:
        kind, name = engine.columns(f"SELECT ({expr}) AS x FROM {relation}")["x"]
    except engine.errors as exc:
        columns = [c for c in engine.columns(f"SELECT * FROM {relation}") if not c.startswith("__")]
        only = ""
        if engine.dialect.name != "DuckDB" and duckdb_accepts(expr, engine.empty(relation)):
            only = f" (DuckDB reads it, {engine.dialect.name} does not: keep to the SQL both engines read)"
        raise ConfigError(
            yaml_path,
            f"{engine.dialect.name} cannot evaluate {expr!r}{only}: {str(exc).strip().splitlines()[0]}",
            fix=f"write a SQL boolean expression over the columns {columns} in the subset both engines read "
            f"({SUBSET_DOC})",
        ) from None
    if kind != "boolean":
        raise ConfigError(yaml_path, f"{expr!r} is {name}, not a boolean", fix="compare it, e.g. `rating >= 4`")


def apply_rule(
    engine: SqlEngine,
    rule: LabelRule,
    label: str,
    columns: list[str],
    origin: str,
    counts: dict[str, int],
    tally: Tally,
) -> tuple[list[str], str]:
    """Create `ruled`: drop rows where `rule.drop` holds (NULL: false), then label = positive (NULL: error).

    Returns its columns and the SQL condition of the kept rows of `joined`; `tally` counts and checks them."""
    check_expression(engine, rule.positive, "joined", "data.label_rule.positive")
    keep = "TRUE"
    if rule.drop:
        check_expression(engine, rule.drop, "joined", "data.label_rule.drop")
        keep = f"NOT coalesce(({rule.drop}), FALSE)"
    tally.add(
        [f"count(*) FILTER (WHERE {keep})", f"min({ROW}) FILTER (WHERE {keep} AND ({rule.positive}) IS NULL)"],
        lambda values: _check_rule(rule, origin, counts, *values),
    )
    if label in columns:
        log.info("%s: label_rule replaces the existing column %r", origin, label)
    kept_columns = [c for c in columns if c != label]
    select = select_list(engine, kept_columns)
    engine.create(
        "ruled",
        f"SELECT {select}, CAST(({rule.positive}) AS BIGINT) AS {engine.dialect.quote(label)} FROM joined WHERE {keep}",
    )
    return [*kept_columns, label], keep


def _check_rule(rule: LabelRule, origin: str, counts: dict[str, int], kept: int, null_row: int | None) -> None:
    counts["dropped"] = counts["raw"] - int(kept)
    counts["rows"] = int(kept)
    if counts["dropped"]:
        log.info(
            "%s: label_rule.drop %r removed %s of %s rows",
            origin,
            rule.drop,
            f"{counts['dropped']:,}",
            f"{counts['raw']:,}",
        )
    if kept == 0:
        raise DataError(
            f"{origin}: `data.label_rule.drop: {rule.drop}` removed all {counts['raw']:,} rows"
            "\n  fix: loosen the drop condition"
        )
    if null_row is not None:
        raise DataError(
            f"{origin}: `data.label_rule.positive: {rule.positive}` is NULL (no label) at behavior row "
            f"{null_row:,} (0-based)\n  fix: add `... IS NULL` to `data.label_rule.drop`, or fill the column"
        )


def check_label(engine: SqlEngine, relation: str, label: str, origin: str, tally: Tally, keep: str) -> str:
    """A 0/1 label column without a rule must exist (in `relation`) and hold only 0/1 (checked by `tally` on the
    rows of `joined` where `keep` holds); returns its SQL as BIGINT."""
    columns = engine.columns(f"SELECT * FROM {relation}")
    names = [c for c in columns if not c.startswith("__")]
    if label not in columns:
        raise DataError(
            f"{origin}: no label column {label!r}; the data has {names}"
            "\n  fix: set `data.label` to one of them, or give `data.label_rule` to derive it"
        )
    kind, type_name = columns[label]
    if kind not in ("integer", "float", "boolean"):
        raise DataError(
            f"{origin}: label column {label!r} is {type_name}, expected 0/1 numbers"
            f"\n  fix: convert it, or derive it with `data.label_rule.positive`"
        )
    number = f"CAST({engine.dialect.quote(label)} AS DOUBLE)"
    bad = f"{keep} AND ({number} IS NULL OR {number} NOT IN (0, 1))"
    tally.add(
        [
            f"count(*) FILTER (WHERE {bad})",
            f"min({ROW}) FILTER (WHERE {bad})",
            f"min_by({engine.dialect.quote(label)}, {ROW}) FILTER (WHERE {bad})",
        ],
        lambda values: _check_label_values(label, origin, *values),
    )
    return f"CAST({engine.dialect.quote(label)} AS BIGINT)"


def _check_label_values(label: str, origin: str, n_bad: int, first: int | None, value: Any) -> None:
    if n_bad:
        raise DataError(
            f"{origin}: label column {label!r} must hold only 0/1, but {n_bad:,} rows do not; first at "
            f"behavior row {first:,} (0-based): {value!r}"
            "\n  fix: clean the column, or derive the label with `data.label_rule`"
        )


def check_target(engine: SqlEngine, relation: str, column: str, origin: str, tally: Tally, keep: str) -> None:
    """A regression task's label: a numeric column of `relation` without nulls (counted by `tally` on `joined`)."""
    columns = engine.columns(f"SELECT * FROM {relation}")
    if column not in columns:
        names = [c for c in columns if not c.startswith("__")]
        raise DataError(f"{origin}: no label column {column!r}; the data has {names}\n  fix: set the task's `label`")
    kind, type_name = columns[column]
    tally.add(
        [f"count(*) FILTER (WHERE {keep} AND {engine.dialect.quote(column)} IS NULL)"],
        lambda values: _check_target_values(column, kind, type_name, origin, values[0]),
    )


def _check_target_values(column: str, kind: str, type_name: str, origin: str, nulls: int) -> None:
    if kind not in ("integer", "float") or nulls:
        raise DataError(
            f"{origin}: regression label {column!r} must be numbers without nulls (type {type_name}, "
            f"{nulls:,} nulls)\n  fix: fill or convert the column"
        )


def label_rows(
    engine: SqlEngine,
    sides: Sequence[Side],
    cfg: DataConfig,
    labels: Sequence[str],
    targets: Sequence[str],
    origin: str,
    counts: dict[str, int],
) -> dict[str, tuple[str, str]]:
    """Join, apply the rule (or check the label columns) and count: the relation `labelled`.

    Every row check and count runs in one query over `joined` (`Tally`). Returns its columns as `join` does
    (a rule's label comes from ("rule", label)).
    """
    tally = Tally()
    sources = join(engine, sides, origin, counts, tally)
    columns = list(sources)
    keep = "TRUE"
    labels_sql: dict[str, str] = {}  # each label's SQL over `joined` (the rule's, then the checked columns')
    if cfg.label_rule is not None:
        columns, keep = apply_rule(engine, cfg.label_rule, cfg.label, columns, origin, counts, tally)
        sources = {c: sources.get(c, ("rule", c)) for c in columns}
        labels_sql[cfg.label] = f"CAST(({cfg.label_rule.positive}) AS BIGINT)"
    else:
        engine.create("ruled", f"SELECT {select_list(engine, columns)} FROM joined")
    casts = {
        label: check_label(engine, "ruled", label, origin, tally, keep)
        for label in labels
        if cfg.label_rule is None or label != cfg.label  # a rule's label is 0/1 by construction
    }
    engine.create("labelled", f"SELECT {select_list(engine, columns, casts)} FROM ruled")
    for target in targets:
        check_target(engine, "labelled", target, origin, tally, keep)
    if cfg.weight and cfg.weight not in columns:
        names = [c for c in columns if not c.startswith("__")]
        raise DataError(
            f"{origin}: no weight column {cfg.weight!r}; the samples have {names}"
            "\n  fix: set `data.weight` to one of them, or remove it"
        )
    labels_sql = {**casts, **labels_sql}
    sums = [f"sum({labels_sql[label]}) FILTER (WHERE {keep})" for label in labels]
    tally.add([f"count(*) FILTER (WHERE {keep})", *sums], lambda values: _record_rows(cfg, labels, counts, *values))
    tally.run(engine, "joined")
    return sources


def _record_rows(cfg: DataConfig, labels: Sequence[str], counts: dict[str, int], total: int, *positives: Any) -> None:
    if cfg.label_rule is None:
        counts["dropped"] = 0
        counts["rows"] = int(total)
    for i, (label, positive) in enumerate(zip(labels, positives, strict=True)):
        counts["positive" if i == 0 else f"positive:{label}"] = int(positive or 0)


def require_rows(split: str, cfg: SplitConfig, origin: str, counts: dict[str, int]) -> None:
    """A split the config asks for must not come out empty."""
    if not counts[split]:
        raise DataError(
            f"{origin}: split {split!r} ({cfg.method}) is empty ({counts['rows']:,} labelled rows)"
            "\n  fix: adjust `data.split` (ratios or dates), or use more data"
        )
