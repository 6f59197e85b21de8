from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recforge.config.schema import SyntheticConfig
from recforge.data import generate_synthetic, oracle_auc, rank_auc

SMALL = SyntheticConfig(n_users=3_000, n_items=800, n_categories=20, n_impressions=200_000, seed=3)


@pytest.fixture(scope="module")
def world():
    return generate_synthetic(SMALL)


def test_same_seed_same_world_other_seed_differs(world) -> None:
    again = generate_synthetic(SMALL)
    assert again.behavior.equals(world.behavior)
    assert again.users.equals(world.users) and again.items.equals(world.items)
    other = generate_synthetic(SMALL.model_copy(update={"seed": 4}))
    assert not other.behavior["click"].equals(world.behavior["click"])


def test_schema_and_sizes(world) -> None:
    assert world.behavior.schema == pa.schema(
        [
            ("user_id", pa.int64()),
            ("item_id", pa.int64()),
            ("timestamp", pa.int64()),
            ("position", pa.int64()),
            ("true_ctr", pa.float64()),
            ("click", pa.int64()),
            ("buy", pa.int64()),
            ("fav", pa.int64()),
        ]
    )
    assert world.users.schema == pa.schema(
        [("user_id", pa.int64()), ("age", pa.int64()), ("gender", pa.string()), ("city_tier", pa.int64())]
    )
    assert world.items.schema == pa.schema(
        [
            ("item_id", pa.int64()),
            ("category_id", pa.int64()),
            ("brand_id", pa.int64()),
            ("price", pa.float64()),
        ]
    )
    assert world.summary() == {"behavior": 200_000, "users": 3_000, "items": 800}
    b = world.behavior
    ts = b["timestamp"].to_numpy()
    assert np.all(np.diff(ts) >= 0) and ts.max() - ts.min() <= 30 * 86_400
    assert set(world.users["gender"].to_pylist()) == {"F", "M"}
    assert world.items["category_id"].to_numpy().max() <= 20
    assert (world.items["price"].to_numpy() > 0).all()


def test_ctr_and_oracle_auc_in_range(world) -> None:
    b = world.behavior
    click, buy, fav = (b[c].to_numpy() for c in ("click", "buy", "fav"))
    assert 0.05 < click.mean() < 0.15, click.mean()
    assert abs(b["true_ctr"].to_numpy().mean() - click.mean()) < 0.005
    assert (buy <= click).all() and (fav <= click).all() and 0 < buy.sum() < click.sum()
    auc = oracle_auc(b)
    assert 0.72 < auc < 0.80, auc  # measured 0.757 here; 0.760 at SyntheticConfig() defaults


def test_popularity_and_activity_skew(world) -> None:
    items = np.bincount(world.behavior["item_id"].to_numpy())
    users = np.bincount(world.behavior["user_id"].to_numpy())
    top_items = np.sort(items)[::-1][: len(items) // 10].sum() / items.sum()
    top_users = np.sort(users)[::-1][: len(users) // 10].sum() / users.sum()
    assert top_items > 0.4, top_items  # Zipf-like exposure
    assert top_users > 0.25, top_users  # log-normal activity


def test_rank_auc_matches_pairwise_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = rng.integers(0, 10, 300).astype(float)  # many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert rank_auc(y, s) == pytest.approx(pairwise, abs=1e-12)
    assert np.isnan(rank_auc(np.zeros(3), np.arange(3.0)))


def test_purchase_objective_leaves_the_click_world_unchanged(world) -> None:
    both = generate_synthetic(SMALL.model_copy(update={"purchase": True})).behavior
    assert both.column_names == [*world.behavior.column_names, "true_ctcvr", "purchase"]
    assert both.select(world.behavior.column_names).equals(world.behavior)  # bit for bit
    click, purchase = both["click"].to_numpy(), both["purchase"].to_numpy()
    true_ctr, true_ctcvr = both["true_ctr"].to_numpy(), both["true_ctcvr"].to_numpy()
    assert (purchase <= click).all() and (true_ctcvr <= true_ctr).all()
    rate = purchase.sum() / click.sum()
    assert 0.05 < rate < 0.12, rate  # measured 0.073 purchases per click (0.66% of impressions)
    assert abs(true_ctcvr.mean() - purchase.mean()) < 0.002
    # partly shared with click: the true CTR alone ranks purchases well, the true CTCVR better still
    shared, best = oracle_auc(both, "purchase", "true_ctr"), oracle_auc(both, "purchase", "true_ctcvr")
    assert 0.80 < shared < best - 0.01 and best < 0.88, (shared, best)  # measured 0.830 and 0.853
    # among clicks, the click probability still ranks purchases (shared effects) but the true CVR does
    # better (its own effects): measured 0.669 and 0.743
    cvr, clicked = true_ctcvr / true_ctr, click == 1
    by_ctr, by_cvr = rank_auc(purchase[clicked], true_ctr[clicked]), rank_auc(purchase[clicked], cvr[clicked])
    assert 0.6 < by_ctr < by_cvr - 0.04, (by_ctr, by_cvr)


def test_planting_options_leave_the_default_world_unchanged(world) -> None:
    from recforge.data.synthetic import planted_cross

    planted = generate_synthetic(SMALL.model_copy(update={"cross_strength": 1.0, "noise_columns": 2}))
    shared = ["user_id", "item_id", "timestamp", "position"]
    assert planted.behavior.select(shared).equals(world.behavior.select(shared))
    assert planted.users.equals(world.users) and planted.items.equals(world.items)
    assert planted.behavior.column_names == [*world.behavior.column_names, "noise_1", "noise_2"]
    noise = planted.behavior["noise_1"].to_numpy()
    assert noise.min() == 1 and noise.max() == 100
    # the planted table is a pure interaction: no row or column effect, RMS = the strength
    table = planted_cross(3, 20, 1.0)
    assert table.shape == (20, 4)
    np.testing.assert_allclose(table.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(table.mean(axis=1), 0.0, atol=1e-12)
    assert abs(np.sqrt((table**2).mean()) - 1.0) < 1e-12
    # and it moves clicks: the true CTR differs from the default world's
    assert not planted.behavior["true_ctr"].equals(world.behavior["true_ctr"])


def test_user_taste_is_a_pure_user_by_category_effect_and_leaves_the_other_draws(world) -> None:
    from recforge.data.synthetic import user_taste

    tasted = generate_synthetic(SMALL.model_copy(update={"user_taste": 1.0}))
    shared = ["user_id", "item_id", "timestamp", "position"]
    assert tasted.behavior.select(shared).equals(world.behavior.select(shared))
    assert tasted.users.equals(world.users) and tasted.items.equals(world.items)
    assert tasted.behavior.column_names == world.behavior.column_names
    table = user_taste(3, 3_000, 20, 1.0)
    assert table.shape == (3_000, 20)
    np.testing.assert_allclose(table.mean(axis=0), 0.0, atol=1e-12)  # no category main effect
    np.testing.assert_allclose(table.mean(axis=1), 0.0, atol=1e-12)  # no user main effect
    assert 0.9 < table.std() < 1.0  # centring trims the spread a little
    # the taste moves each impression's true logit by exactly its user x category cell
    ctr = [w.behavior["true_ctr"].to_numpy() for w in (world, tasted)]
    users = tasted.behavior["user_id"].to_numpy() - 1
    categories = tasted.items["category_id"].to_numpy()[tasted.behavior["item_id"].to_numpy() - 1] - 1
    shift = np.log(ctr[1] / (1 - ctr[1])) - np.log(ctr[0] / (1 - ctr[0])) - table[users, categories]
    np.testing.assert_allclose(shift, shift[0], atol=1e-9)  # all that is left is the recalibrated intercept


def test_the_default_world_is_bit_for_bit_what_it_was_before_the_recency_option(world) -> None:
    """Digests of the default world as generated before `recency_effect` existed (commit 6828822)."""
    import hashlib

    def digest(column: str) -> str:
        return hashlib.sha256(world.behavior[column].to_numpy().tobytes()).hexdigest()[:16]

    assert int(world.behavior["click"].to_numpy().sum()) == 17970
    assert (digest("true_ctr"), digest("click")) == ("c7ff1cebda471af0", "d027c7576184f022")


def test_recency_raises_the_logit_by_the_share_of_the_last_clicks_in_the_category(world) -> None:
    recency = generate_synthetic(SMALL.model_copy(update={"recency_effect": 3.0, "recency_window": 4}))
    shared = ["user_id", "item_id", "timestamp", "position"]
    assert recency.behavior.select(shared).equals(world.behavior.select(shared))
    t = recency.behavior  # rows in time order
    category = recency.items["category_id"].to_numpy()[t["item_id"].to_numpy() - 1]
    users, clicks = t["user_id"].to_numpy(), t["click"].to_numpy()
    recent: dict[int, list[int]] = {}
    share = np.zeros(t.num_rows)
    for k in range(t.num_rows):  # the rule, replayed from the drawn clicks
        last = recent.get(int(users[k]), [])[-4:]
        share[k] = last.count(category[k]) / 4
        if clicks[k]:
            recent.setdefault(int(users[k]), []).append(int(category[k]))

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p / (1 - p))

    shift = logit(t["true_ctr"].to_numpy()) - logit(world.behavior["true_ctr"].to_numpy()) - 3.0 * share
    np.testing.assert_allclose(shift, shift[0], atol=1e-9)  # only the intercept moved besides the effect
    assert abs(clicks.mean() - 0.09) < 0.005  # calibrated to the same click rate
    assert share.mean() > 0.05 and oracle_auc(t) > oracle_auc(world.behavior) + 0.03
