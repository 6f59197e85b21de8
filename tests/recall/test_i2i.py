"""ItemCF, Swing and UserCF: scores computed by hand, input cleaning, output forms, and identical engines."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from recforge.config.i2i import I2IConfig, TimeDecay
from recforge.errors import ConfigError, DataError
from recforge.recall.i2i import ENGINES, I2IResult, run_i2i, to_text_form, write_i2i

from support import FAST_LOCAL_SPARK, SPARK_MASTER

DAY = 86_400
# Four users' baskets. Items a:3 users, b:2, c:2, d:2. Shared users: ab 2, ac 2, ad 1, bc 1, cd 1, bd 0.
BASKETS = {"u1": "abc", "u2": "ab", "u3": "acd", "u4": "d"}
S6 = math.sqrt(6)

Neighbors = dict[Any, list[tuple[Any, float]]]


@pytest.fixture(params=["duckdb", "numpy"])
def engine(request: pytest.FixtureRequest) -> str:
    """The in-process engines: every hand-computed case runs on each."""
    name: str = request.param
    return name


def behavior(baskets: dict[str, str], **columns: list[Any]) -> pa.Table:
    """One row per (user, item) in basket order, plus any extra columns given row by row."""
    pairs = [(user, item) for user, items in baskets.items() for item in items]
    return pa.table({"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs], **columns})


def neighbors(result: I2IResult) -> Neighbors:
    key, other = result.table.column_names[:2]
    out: Neighbors = {}
    for row in result.table.to_pylist():
        out.setdefault(row[key], []).append((row[other], row["score"]))
    return out


def assert_neighbors(got: Neighbors, expected: Neighbors) -> None:
    """Same keys, same neighbors in the same order, scores equal up to the 12-decimal rounding."""
    assert {k: [o for o, _ in v] for k, v in got.items()} == {k: [o for o, _ in v] for k, v in expected.items()}
    for key, row in expected.items():
        assert [s for _, s in got[key]] == pytest.approx([s for _, s in row], abs=1e-12, rel=0), key


# ---------------------------------------------------------------- hand-computed similarities


def test_itemcf_cosine_by_hand_ties_by_id(engine: str) -> None:
    result = run_i2i(behavior(BASKETS), I2IConfig(engine=engine))
    expected = {
        "a": [("b", 2 / S6), ("c", 2 / S6), ("d", 1 / S6)],  # b and c tie: ascending id
        "b": [("a", 2 / S6), ("c", 1 / 2)],
        "c": [("a", 2 / S6), ("b", 1 / 2), ("d", 1 / 2)],
        "d": [("c", 1 / 2), ("a", 1 / S6)],
    }
    assert_neighbors(neighbors(result), expected)
    stats = result.stats
    assert (stats["users"], stats["items"], stats["pairs"], stats["output_rows"]) == (4, 4, 5, 10)
    assert stats["items_with_neighbors"] == 4


def test_itemcf_jaccard_by_hand(engine: str) -> None:
    result = run_i2i(behavior(BASKETS), I2IConfig(engine=engine, similarity="jaccard"))
    expected = {
        "a": [("b", 2 / 3), ("c", 2 / 3), ("d", 1 / 4)],
        "b": [("a", 2 / 3), ("c", 1 / 3)],
        "c": [("a", 2 / 3), ("b", 1 / 3), ("d", 1 / 3)],
        "d": [("c", 1 / 3), ("a", 1 / 4)],
    }
    assert_neighbors(neighbors(result), expected)


def test_itemcf_asymmetric_cosine_by_hand(engine: str) -> None:
    got = neighbors(run_i2i(behavior(BASKETS), I2IConfig(engine=engine, similarity="asymmetric_cosine", alpha=0.25)))

    def sim(co: int, n_i: int, n_j: int) -> float:
        return co / (n_i**0.25 * n_j**0.75)

    expected = {
        "a": [("b", sim(2, 3, 2)), ("c", sim(2, 3, 2)), ("d", sim(1, 3, 2))],
        "b": [("a", sim(2, 2, 3)), ("c", sim(1, 2, 2))],  # b->a (0.74) differs from a->b (0.90)
    }
    assert_neighbors({k: got[k] for k in expected}, expected)


def test_itemcf_user_penalty_by_hand(engine: str) -> None:
    got = neighbors(run_i2i(behavior(BASKETS), I2IConfig(engine=engine, penalty=True)))
    u1, u2, u3 = 1 / math.log(4), 1 / math.log(3), 1 / math.log(4)  # users with 3, 2 and 3 items
    assert_neighbors({"a": got["a"]}, {"a": [("b", (u1 + u2) / S6), ("c", (u1 + u3) / S6), ("d", u3 / S6)]})


def test_itemcf_time_decay_by_hand(engine: str) -> None:
    # u1 saw b a day after a and c; every other pair is simultaneous. tau = 1 day halves u1's (a, b) and (b, c).
    times = {"u1": {"a": 0, "b": DAY, "c": 0}}
    table = behavior(BASKETS, timestamp=[times.get(u, {}).get(i, 0) for u, items in BASKETS.items() for i in items])
    got = neighbors(run_i2i(table, I2IConfig(engine=engine, time_decay=TimeDecay(tau=1, unit="days"))))
    expected = {"a": [("c", 2 / S6), ("b", 1.5 / S6), ("d", 1 / S6)], "b": [("a", 1.5 / S6), ("c", 0.25)]}
    assert_neighbors({k: got[k] for k in expected}, expected)


def test_itemcf_time_decay_reads_timestamp_columns(engine: str) -> None:
    seconds = behavior(BASKETS, timestamp=[1_700_000_000 + 3600 * k for k in range(9)])
    stamps = seconds.set_column(2, "timestamp", seconds["timestamp"].cast(pa.timestamp("s")).cast(pa.timestamp("ms")))
    config = I2IConfig(engine=engine, time_decay=TimeDecay(tau=2, unit="hours"))
    assert run_i2i(stamps, config).table.equals(run_i2i(seconds, config).table)


def test_weighted_cosine_and_duplicates_by_hand(engine: str) -> None:
    # u1 clicks a twice and buys it once: max keeps the buy (4), sum adds 1 + 1 + 4 = 6.
    table = pa.table(
        {
            "user_id": ["u1", "u1", "u1", "u1", "u2", "u2"],
            "item_id": ["a", "a", "a", "b", "a", "b"],
            "behavior": ["click", "click", "buy", "click", "click", "buy"],
        }
    )
    weights = {"click": 1.0, "buy": 4.0}

    def cosine(a1: float) -> float:  # vectors a = (a1, 1), b = (1, 4) over users (u1, u2)
        return (a1 * 1 + 1 * 4) / math.sqrt((a1**2 + 1) * (1 + 16))

    for dedupe, a1 in (("max", 4.0), ("sum", 6.0)):
        result = run_i2i(table, I2IConfig(engine=engine, behavior_weights=weights, dedupe=dedupe))
        assert_neighbors({"a": neighbors(result)["a"]}, {"a": [("b", cosine(a1))]})
        assert result.stats["duplicates"] == 2


def test_min_co_count_and_top_n(engine: str) -> None:
    got = neighbors(run_i2i(behavior(BASKETS), I2IConfig(engine=engine, min_co_count=2)))
    assert_neighbors(got, {"a": [("b", 2 / S6), ("c", 2 / S6)], "b": [("a", 2 / S6)], "c": [("a", 2 / S6)]})
    top1 = run_i2i(behavior(BASKETS), I2IConfig(engine=engine, top_n=1))
    assert top1.table["similar_item_id"].to_pylist() == ["b", "a", "a", "c"]
    assert top1.stats["pairs"] == 5


SWING_BASKETS = {**BASKETS, "u5": "abc"}


def test_swing_by_hand(engine: str) -> None:
    # Users with a and b: u1, u2, u5. Overlaps |I1∩I2| = 2, |I1∩I5| = 3, |I2∩I5| = 2: 1/3 + 1/4 + 1/3.
    # a and c: u1, u3, u5, overlaps 2, 3, 2: the same. b and c: u1, u5 only: 1/4. d has no user pair.
    config = I2IConfig(engine=engine, method="swing", swing_alpha=1.0, swing_user_weight=False, swing_keep="random")
    expected = {
        "a": [("b", 11 / 12), ("c", 11 / 12)],
        "b": [("a", 11 / 12), ("c", 1 / 4)],
        "c": [("a", 11 / 12), ("b", 1 / 4)],
    }
    assert_neighbors(neighbors(run_i2i(behavior(SWING_BASKETS), config)), expected)


def test_swing_user_weight_by_hand(engine: str) -> None:
    config = I2IConfig(engine=engine, method="swing", swing_keep="random")  # weight 1/sqrt(|I_u|), alpha 1
    got = neighbors(run_i2i(behavior(BASKETS), config))  # a-b: only (u1, u2); a-c: only (u1, u3)
    expected = {"a": [("b", 1 / math.sqrt(3 * 2) / 3), ("c", 1 / math.sqrt(3 * 3) / 3)]}
    assert_neighbors({"a": got["a"]}, expected)


def test_swing_cap_keeps_most_recent_users(engine: str) -> None:
    # User k acts at time k. With 2 users per item: a keeps u5, u3; b keeps u5, u2; c keeps u5, u3; d all.
    # The only user pair sharing two items is (u3, u5) on {a, c}.
    table = behavior(SWING_BASKETS, timestamp=[int(u[1]) for u, items in SWING_BASKETS.items() for _ in items])
    config = I2IConfig(engine=engine, method="swing", max_users_per_item=2, swing_user_weight=False)
    result = run_i2i(table, config)
    assert_neighbors(neighbors(result), {"a": [("c", 1 / 3)], "c": [("a", 1 / 3)]})
    assert result.stats["capped_rows"] == 4


def test_swing_random_cap_is_seeded(engine: str) -> None:
    table = synthetic_behavior(n_rows=600, seed=3)
    config = I2IConfig(engine=engine, method="swing", max_users_per_item=5, swing_keep="random", seed=7)
    first, again = run_i2i(table, config), run_i2i(table, config)
    assert first.table.equals(again.table)
    other_seed = run_i2i(table, config.model_copy(update={"seed": 8}))
    assert first.stats["capped_rows"] == other_seed.stats["capped_rows"] > 0
    assert not first.table.equals(other_seed.table)


def test_usercf_by_hand(engine: str) -> None:
    # Item penalty 1/log(1 + users of item): a has 3 users, b, c, d have 2. Users hold 3, 2, 3, 1 items.
    pa_, pb = 1 / math.log(4), 1 / math.log(3)
    result = run_i2i(behavior(BASKETS), I2IConfig(engine=engine, method="usercf", penalty=True))
    assert result.table.column_names == ["user_id", "similar_user_id", "score", "rank"]
    expected = {
        "u1": [("u2", (pa_ + pb) / S6), ("u3", (pa_ + pb) / 3)],
        "u2": [("u1", (pa_ + pb) / S6), ("u3", pa_ / S6)],
        "u3": [("u1", (pa_ + pb) / 3), ("u4", pb / math.sqrt(3)), ("u2", pa_ / S6)],
        "u4": [("u3", pb / math.sqrt(3))],
    }
    assert_neighbors(neighbors(result), expected)
    assert result.stats["users_with_neighbors"] == 4


# ---------------------------------------------------------------- input cleaning and errors


def test_behavior_filter_and_counts() -> None:
    table = behavior(BASKETS, behavior=["buy", "buy", "click", "buy", "buy", "click", "click", "click", "buy"])
    result = run_i2i(table, I2IConfig(behaviors=["buy"]))  # buys: u1 a b, u2 a b, u4 d
    assert_neighbors(neighbors(result), {"a": [("b", 1.0)], "b": [("a", 1.0)]})
    assert result.stats["filtered_by_behavior"] == 4
    assert (result.stats["rows"], result.stats["users"], result.stats["items"]) == (5, 3, 3)


def test_unmapped_behaviors_dropped_or_strict() -> None:
    table = behavior(BASKETS, behavior=["click"] * 8 + ["share"])
    result = run_i2i(table, I2IConfig(behavior_weights={"click": 1.0}))
    assert result.stats["unmapped_behaviors"] == 1
    with pytest.raises(DataError, match=r"1 of 9 rows have a behavior missing from `behavior_weights`.*share"):
        run_i2i(table, I2IConfig(behavior_weights={"click": 1.0}, strict=True))


def test_nonpositive_weights_and_null_ids_dropped_or_strict() -> None:
    table = pa.table(
        {
            "user_id": ["u1", "u1", "u2", "u2", None, "u3"],
            "item_id": ["a", "b", "a", "b", "a", "a"],
            "w": [1.0, 2.0, 0.0, -1.0, 1.0, None],
        }
    )
    result = run_i2i(table, I2IConfig(weight_col="w"))
    assert (result.stats["null_ids"], result.stats["nonpositive_weights"], result.stats["rows"]) == (1, 3, 2)
    assert_neighbors(neighbors(result), {"a": [("b", 1.0)], "b": [("a", 1.0)]})
    with pytest.raises(DataError, match=r"1 of 6 rows have a null id, e.g. row 4"):
        run_i2i(table, I2IConfig(weight_col="w", strict=True))


def test_filter_that_leaves_nothing_is_an_error() -> None:
    table = behavior(BASKETS, behavior=["click"] * 9)
    with pytest.raises(DataError, match=r"no rows left after the filters.*filtered_by_behavior 9"):
        run_i2i(table, I2IConfig(behaviors=["buy"]))


def test_mixed_and_float_ids_name_the_column() -> None:
    with pytest.raises(DataError, match=r"'user_id' holds values of mixed types"):
        run_i2i({"user_id": [1, "u2"], "item_id": [1, 2]}, I2IConfig())
    with pytest.raises(DataError, match=r"id column 'item_id' is double; ids must be integers or strings"):
        run_i2i(pa.table({"user_id": [1, 2], "item_id": [1.0, 2.5]}), I2IConfig())


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match=r"missing column\(s\) \['timestamp'\]"):
        run_i2i(behavior(BASKETS), I2IConfig(time_decay=TimeDecay(tau=1)))


def test_config_rejects_options_the_method_ignores() -> None:
    with pytest.raises(ConfigError, match="max_users_per_item: applies only to swing"):
        run_i2i(behavior(BASKETS), I2IConfig(max_users_per_item=10))
    with pytest.raises(ConfigError, match="similarity: applies only to itemcf and usercf"):
        run_i2i(behavior(BASKETS), I2IConfig(method="swing", similarity="jaccard"))
    with pytest.raises(ValidationError):
        I2IConfig(topn=5)  # type: ignore[call-arg]
    assert ENGINES.names() == ["duckdb", "numpy", "spark"]


def test_integer_ids_and_custom_columns_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    table = behavior(BASKETS).rename_columns(["uid", "iid"])
    ids = {"a": 10, "b": 2, "c": 33, "d": 4}  # integer order differs from the letters' order
    table = table.set_column(1, "iid", pa.array([ids[i] for i in table["iid"].to_pylist()]))
    pacsv.write_csv(table, path)
    result = run_i2i(str(path), I2IConfig(user_col="uid", item_col="iid"))
    assert result.table.schema == pa.schema(
        [("item_id", pa.int64()), ("similar_item_id", pa.int64()), ("score", pa.float64()), ("rank", pa.int32())]
    )
    assert result.table["item_id"].to_pylist() == [2, 2, 4, 4, 10, 10, 10, 33, 33, 33]
    assert_neighbors({10: neighbors(result)[10]}, {10: [(2, 2 / S6), (33, 2 / S6), (4, 1 / S6)]})


@pytest.mark.slow
def test_itemcf_on_movielens_100k(ml100k_dir: Path, engine: str) -> None:
    from recforge.data.movielens import load_movielens

    result = run_i2i(load_movielens(str(ml100k_dir)).behavior, I2IConfig(top_n=100, engine=engine))
    stats = result.stats
    assert (stats["users"], stats["items"], stats["pairs"], stats["output_rows"]) == (943, 1682, 983_206, 167_835)
    star_wars = result.table.filter(pc.equal(result.table["item_id"], "50"))
    assert star_wars["similar_item_id"].to_pylist()[:3] == ["181", "174", "172"]  # Jedi, Raiders, Empire


# ---------------------------------------------------------------- output forms


def test_text_form_and_writers(tmp_path: Path) -> None:
    result = run_i2i(behavior(BASKETS), I2IConfig(similarity="jaccard"))
    text = to_text_form(result.table)
    assert text.to_pylist() == [
        {"item_id": "a", "similar_items": "b:0.666667,c:0.666667,d:0.250000"},
        {"item_id": "b", "similar_items": "a:0.666667,c:0.333333"},
        {"item_id": "c", "similar_items": "a:0.666667,b:0.333333,d:0.333333"},
        {"item_id": "d", "similar_items": "c:0.333333,a:0.250000"},
    ]
    assert to_text_form(result.table, decimals=2)["similar_items"][3].as_py() == "c:0.33,a:0.25"
    write_i2i(result, str(tmp_path / "long.parquet"))
    assert pq.read_table(tmp_path / "long.parquet").equals(result.table)
    write_i2i(result, str(tmp_path / "out" / "text.csv"), "text_csv")
    assert pacsv.read_csv(tmp_path / "out" / "text.csv").to_pylist() == text.to_pylist()
    write_i2i(result, str(tmp_path / "text.parquet"), "text_parquet")
    assert pq.read_table(tmp_path / "text.parquet").equals(text)


# ---------------------------------------------------------------- the engines agree


def synthetic_behavior(n_rows: int = 3_000, seed: int = 0) -> pa.Table:
    """Popularity-skewed clicks, carts and buys over 30 days, with repeats, so scores tie and pairs repeat."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_rows // 12, n_rows)
    items = rng.zipf(1.4, n_rows) % (n_rows // 20)
    return pa.table(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": items,
            "behavior": rng.choice(["click", "cart", "buy"], n_rows, p=[0.7, 0.2, 0.1]),
            "timestamp": 1_700_000_000 + rng.integers(0, 30 * DAY, n_rows),
        }
    )


def assert_same_result(got: I2IResult, expected: I2IResult) -> None:
    """Same ids, same order, bit-equal scores, and the same stats but for the engine and its time."""
    assert got.table.equals(expected.table)
    drop = {"engine", "seconds"}
    assert {k: v for k, v in got.stats.items() if k not in drop} == {
        k: v for k, v in expected.stats.items() if k not in drop
    }


WEIGHTS = {"click": 1.0, "cart": 2.0, "buy": 4.0}
ENGINE_CASES = [
    pytest.param({"similarity": "cosine", "behavior_weights": WEIGHTS, "penalty": True}, True, id="itemcf-cosine"),
    pytest.param({"similarity": "jaccard"}, True, id="itemcf-jaccard"),
    pytest.param(
        {"similarity": "asymmetric_cosine", "alpha": 0.3, "time_decay": {"tau": 3}, "dedupe": "sum"},
        False,  # time gaps make every score distinct
        id="itemcf-asymmetric-decay",
    ),
    pytest.param({"method": "swing", "max_users_per_item": 20}, True, id="swing"),
    pytest.param({"method": "usercf", "penalty": True, "behavior_weights": WEIGHTS}, True, id="usercf"),
]


@pytest.mark.parametrize(("options", "ties"), ENGINE_CASES)
def test_numpy_and_duckdb_give_identical_lists(options: dict[str, Any], ties: bool) -> None:
    table = synthetic_behavior()
    config = I2IConfig(top_n=10, **options)
    duck = run_i2i(table, config)
    assert duck.table.num_rows > 400
    assert_same_result(run_i2i(table, config.model_copy(update={"engine": "numpy"})), duck)
    scores = duck.table["score"].to_numpy()
    keys = duck.table.column(0).to_numpy(zero_copy_only=False)
    assert ((scores[1:] == scores[:-1]) & (keys[1:] == keys[:-1])).any() == ties  # tied lists test the tie order


@pytest.mark.parametrize(("options", "ties"), ENGINE_CASES)
def test_numpy_in_small_blocks_gives_identical_lists(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], ties: bool
) -> None:
    """Blocks of links, chunks of keys, selection matrices and term slices far smaller than the data."""
    from recforge.recall.i2i import numpy_engine

    table = synthetic_behavior(n_rows=1_500, seed=1)
    config = I2IConfig(top_n=3, **options)
    duck = run_i2i(table, config)
    for name, size in {"LINK_BUDGET": 500, "PAIR_BUDGET": 300, "SELECT_BUDGET": 40, "TERM_SLICE": 64}.items():
        monkeypatch.setattr(numpy_engine, name, size)
    assert_same_result(run_i2i(table, config.model_copy(update={"engine": "numpy"})), duck)


@pytest.mark.parametrize(
    "options",
    [{}, {"similarity": "jaccard"}, {"time_decay": {"tau": 1}}, {"method": "usercf", "min_co_count": 2}],
    ids=["cosine", "jaccard", "decay", "usercf"],
)
def test_numpy_matches_duckdb_where_terms_round_to_zero(options: dict[str, Any]) -> None:
    """Weights so small that many fixed-point terms are 0: pairs must still count where sums are 0."""
    table = synthetic_behavior(n_rows=1_500, seed=2)
    weight = np.where(np.arange(table.num_rows) % 7 == 0, 1e3, 1e-12)
    config = I2IConfig(top_n=5, weight_col="w", **options)
    table = table.append_column("w", pa.array(weight))
    duck = run_i2i(table, config)
    assert (duck.table["score"].to_numpy() == 0).any()
    assert_same_result(run_i2i(table, config.model_copy(update={"engine": "numpy"})), duck)


def test_numpy_swing_over_many_users_with_few_items() -> None:
    """Most user pairs share nothing: the numpy engine numbers only the pairs there are."""
    rng = np.random.default_rng(5)
    table = pa.table({"user_id": np.repeat(np.arange(3_000), 3), "item_id": rng.integers(0, 40, 9_000)})
    config = I2IConfig(method="swing", swing_keep="random", top_n=5)
    assert_same_result(run_i2i(table, config.model_copy(update={"engine": "numpy"})), run_i2i(table, config))


def test_numpy_engine_on_empty_results() -> None:
    lonely = pa.table({"user_id": [1, 2, 3], "item_id": ["a", "b", "c"]})
    for options in ({}, {"method": "swing", "swing_keep": "random"}, {"method": "usercf"}):
        result = run_i2i(lonely, I2IConfig(engine="numpy", **options))
        assert result.table.num_rows == 0 == result.stats["pairs"]
    assert run_i2i(behavior(BASKETS), I2IConfig(engine="numpy", min_co_count=3)).table.num_rows == 0


@pytest.fixture(scope="session")
def spark_engine_ready() -> Iterator[None]:
    """One local Spark session for the whole run (startup takes seconds); skipped without pyspark or Java."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    from recforge.data.spark_session import spark_session, stop_sessions

    spark_session(SPARK_MASTER, FAST_LOCAL_SPARK)
    yield
    stop_sessions()


@pytest.mark.parametrize(("options", "ties"), ENGINE_CASES)
def test_duckdb_and_spark_give_identical_lists(spark_engine_ready: None, options: dict[str, Any], ties: bool) -> None:
    table = synthetic_behavior()
    config = I2IConfig(top_n=10, spark_master=SPARK_MASTER, **options)
    duck = run_i2i(table, config)
    assert_same_result(run_i2i(table, config.model_copy(update={"engine": "spark"})), duck)
