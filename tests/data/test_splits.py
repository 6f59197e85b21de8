from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from recforge.config.schema import SplitConfig
from recforge.data import assign_splits
from recforge.errors import ConfigError, DataError


def users_table(sizes: list[int]) -> pa.Table:
    """Users u0, u1, ... with the given row counts; timestamps increase within each user, rows interleaved."""
    user = np.repeat(np.arange(len(sizes)), sizes)
    ts = np.concatenate([np.arange(n) * 10 for n in sizes])
    order = np.random.default_rng(1).permutation(len(user))
    return pa.table({"user_id": [f"u{u}" for u in user[order]], "timestamp": ts[order]})


def test_random_sizes_follow_the_ratios_and_the_seed() -> None:
    table = pa.table({"x": np.arange(100_001)})
    codes = assign_splits(table, SplitConfig(seed=5))
    # each row lands by its own hash, so sizes are binomial around 80/10/10 % (3 sigma: +-380 / +-285)
    assert np.bincount(codes).tolist() == [80_067, 9_958, 9_976]
    share = np.array([int(hashlib.md5(f"5|{x}".encode()).hexdigest()[:15], 16) / 16**15 for x in range(100_001)])
    assert np.array_equal(codes, np.where(share < 0.8, 0, np.where(share < 0.9, 1, 2)))  # md5 of "seed|x"
    assert not np.array_equal(codes, assign_splits(table, SplitConfig(seed=6)))
    assert np.bincount(assign_splits(table, SplitConfig(ratios=(8, 2, 0))), minlength=3)[2] == 0


def test_a_row_keeps_its_side_whatever_the_order_or_company() -> None:
    """The hash of a row's values decides its side: shuffling or subsetting the rows changes nothing."""
    table = pa.table({"user_id": [f"u{i % 97}" for i in range(5_000)], "item_id": np.arange(5_000)})
    codes = assign_splits(table, SplitConfig(seed=1))
    order = np.random.default_rng(0).permutation(5_000)[:3_000]
    assert np.array_equal(assign_splits(table.take(pa.array(order)), SplitConfig(seed=1)), codes[order])
    floats = table.append_column("score", pa.array(np.linspace(0, 1, 5_000)))  # floats are not hashed
    assert np.array_equal(assign_splits(floats, SplitConfig(seed=1)), codes)


def test_per_user_cuts_each_user() -> None:
    table = users_table([10, 20, 1, 5])
    codes = assign_splits(table, SplitConfig(method="per_user", seed=3))
    users = np.array(table["user_id"].to_pylist())
    per_user = {u: np.bincount(codes[users == u], minlength=3).tolist() for u in ["u0", "u1", "u2"]}
    assert per_user == {"u0": [8, 1, 1], "u1": [16, 2, 2], "u2": [1, 0, 0]}
    assert np.array_equal(codes, assign_splits(table, SplitConfig(method="per_user", seed=3)))
    assert not np.array_equal(codes, assign_splits(table, SplitConfig(method="per_user", seed=4)))


def test_leave_last_by_time() -> None:
    table = users_table([4, 2, 1])
    codes = assign_splits(table, SplitConfig(method="leave_last"))
    users = np.array(table["user_id"].to_pylist())
    ts = table["timestamp"].to_numpy()
    u0 = codes[users == "u0"][np.argsort(ts[users == "u0"])]
    assert u0.tolist() == [0, 0, 1, 2]
    u1 = codes[users == "u1"][np.argsort(ts[users == "u1"])]
    assert u1.tolist() == [0, 2]  # two rows: no valid row
    assert codes[users == "u2"].tolist() == [0]  # one row stays in train


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1_704_067_200 + d * 86_400 for d in range(10)]),
        pa.array([1_704_067_200_000 + d * 86_400_000 for d in range(10)], pa.timestamp("ms", tz="UTC")),
        pa.array(np.arange(19_723, 19_733, dtype=np.int32), pa.date32()),  # 2024-01-01 .. 2024-01-10
    ],
)
def test_by_date_seconds_timestamps_and_dates(column: pa.Array) -> None:
    table = pa.table({"timestamp": column})
    cfg = SplitConfig(method="by_date", valid_from="2024-01-08", test_from="2024-01-09T00:00:00Z")
    assert assign_splits(table, cfg).tolist() == [0] * 7 + [1, 2, 2]
    cfg = SplitConfig(method="by_date", test_from=str(1_704_067_200 + 5 * 86_400))
    assert assign_splits(table, cfg).tolist() == [0] * 5 + [2] * 5


def test_split_errors() -> None:
    table = users_table([3])
    with pytest.raises(DataError, match=r"no column 'uid' for the split; the samples have \['user_id', 'timestamp'\]"):
        assign_splits(table, SplitConfig(method="per_user", user_column="uid"))
    with pytest.raises(ConfigError, match=r"data.split.valid_from: cannot read 'last week' as a date"):
        assign_splits(table, SplitConfig(method="by_date", valid_from="last week"))
    with pytest.raises(ConfigError, match=r"data\.split\.ratios"):
        assign_splits(table, SplitConfig(ratios=(0, 1, 1)))
    nulls = pa.table({"user_id": ["a", None, "b"], "timestamp": [1, 2, 3]})
    with pytest.raises(DataError, match=r"'user_id' has 1 null values \(first at row 1\)"):
        assign_splits(nulls, SplitConfig(method="leave_last"))


def test_key_columns_make_copies_with_other_side_columns_split_alike() -> None:
    n = 5_000
    rows = np.arange(n)
    log = {"user_id": pa.array(rows % 97), "item_id": pa.array(rows % 331), "ts": pa.array(rows)}
    a = pa.table({**log, "title": pa.array([f"film {i}" for i in range(n)])})
    b = pa.table({**log, "title": pa.array([f"film {i} (1995)" for i in range(n)])})  # same log, other side column
    keyed = SplitConfig(key_columns=("user_id", "item_id", "ts"))
    assert np.array_equal(assign_splits(a, keyed), assign_splits(b, keyed))
    assert not np.array_equal(assign_splits(a, SplitConfig()), assign_splits(b, SplitConfig()))  # all columns: differ
    with pytest.raises(DataError, match=r"key_columns \['nope'\]"):
        assign_splits(a, SplitConfig(key_columns=("user_id", "nope")))
