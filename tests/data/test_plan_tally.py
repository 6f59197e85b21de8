"""The sample plan's row checks and counts run as one query over the joined rows, and count what they did."""

from __future__ import annotations

import pytest

from recforge.config.schema import DataConfig, SyntheticConfig
from recforge.data import generate_synthetic
from recforge.data.samples import join_and_label
from recforge.data.sql_engine import DuckSql
from recforge.errors import DataError


def test_every_check_and_count_is_one_query_over_the_joined_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    world = generate_synthetic(SyntheticConfig(n_users=300, n_items=100, n_impressions=5_000, seed=2))
    queries: list[str] = []
    rows = DuckSql.rows
    monkeypatch.setattr(DuckSql, "rows", lambda self, sql: queries.append(sql) or rows(self, sql))
    cfg = DataConfig(source="synthetic", label="click", label_rule={"positive": "click = 1", "drop": "position > 15"})
    table, counts = join_and_label(world, cfg, labels=["click", "buy"])
    assert len([q for q in queries if "FROM joined" in q]) == 1  # unmatched x2, rule, buy's 0/1 check, sums
    position = world.behavior["position"].to_numpy()
    kept = position <= 15
    assert counts["dropped"] == int((~kept).sum()) > 0
    assert counts["rows"] == table.num_rows == int(kept.sum())
    assert counts["positive"] == int(world.behavior["click"].to_numpy()[kept].sum())
    assert counts["positive:buy"] == int(world.behavior["buy"].to_numpy()[kept].sum())
    assert counts["users_unmatched"] == counts["items_unmatched"] == 0


def test_checks_conclude_in_plan_order_the_rule_before_the_other_labels() -> None:
    """A NULL rule label (first at row 17) and a non-0/1 `buy` (row 3): the rule's check was added first."""
    world = generate_synthetic(SyntheticConfig(n_users=300, n_items=100, n_impressions=2_000, seed=2))
    fav = world.behavior["fav"].to_pylist()
    buy = world.behavior["buy"].to_pylist()
    fav[17] = fav[40] = None
    buy[3] = 2
    behavior = world.behavior.set_column(world.behavior.schema.get_field_index("fav"), "fav", [fav])
    world.behavior = behavior.set_column(behavior.schema.get_field_index("buy"), "buy", [buy])
    cfg = DataConfig(source="synthetic", label="click", label_rule={"positive": "fav = 1"})
    with pytest.raises(DataError, match="is NULL \\(no label\\) at behavior row 17 "):
        join_and_label(world, cfg, labels=["click", "buy"])
    with pytest.raises(
        DataError, match="label column 'buy' must hold only 0/1, but 1 rows do not; first at behavior row 3"
    ):
        join_and_label(world, cfg.model_copy(update={"label_rule": None}), labels=["click", "buy"])
