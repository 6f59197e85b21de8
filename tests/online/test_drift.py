"""Drift monitor on the synthetic click stream: a shifted feature raises the alarm within two windows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recforge.config.schema import SyntheticConfig
from recforge.data.synthetic import generate_synthetic
from recforge.errors import DataError
from recforge.online.drift import DriftConfig, DriftMonitor, psi
from recforge.train.metrics import auc

WINDOW = 5_000


@pytest.fixture(scope="module")
def stream() -> pa.Table:
    raw = generate_synthetic(SyntheticConfig(n_users=3000, n_items=500, n_categories=10, n_impressions=60_000, seed=3))
    joined = raw.behavior.join(raw.items, "item_id").join(raw.users, "user_id")
    return joined.take(pc.sort_indices(joined, [("timestamp", "ascending")]))


def monitor(reference: pa.Table, **kw: float) -> DriftMonitor:
    ref_auc = auc(reference["click"].to_numpy(), reference["true_ctr"].to_numpy())
    return DriftMonitor(
        reference, ["price", "category_id", "position"], label="click", config=DriftConfig(window=WINDOW, **kw),
        reference_auc=ref_auc,
    )  # fmt: skip


def feed(mon: DriftMonitor, table: pa.Table, chunk: int = 1_234) -> list[bool]:
    """Alarm state after each judged window (fed in uneven batches, as a stream delivers)."""
    states = []
    for start in range(0, table.num_rows, chunk):
        part = table.slice(start, chunk)
        for _ in mon.observe(part, part["true_ctr"].to_numpy()):
            states.append(mon.alarm)
    return states


def test_a_stable_stream_raises_no_alarm(stream: pa.Table) -> None:
    mon = monitor(stream.slice(0, 20_000))
    assert feed(mon, stream.slice(20_000, 40_000)) == [False] * 8
    assert max(max(r.psi.values()) for r in mon.reports) < 0.05
    assert mon.publishing_allowed


def test_a_shifted_feature_stops_publishing_until_it_recovers_or_is_cleared(stream: pa.Table) -> None:
    mon = monitor(stream.slice(0, 20_000))
    seen: list[int] = []
    mon.on_alarm = lambda report: seen.append(report.index)
    clean = stream.slice(20_000, 10_000)
    shifted = stream.slice(30_000, 10_000)
    shifted = shifted.set_column(shifted.column_names.index("price"), "price", pc.multiply(shifted["price"], 3.0))
    states = feed(mon, pa.concat_tables([clean, shifted]))
    assert states[:2] == [False, False]
    assert True in states[2:4], "the alarm comes within two windows of the shift"
    assert not mon.publishing_allowed and any("price" in r for r in mon.alarm_reasons)
    assert seen == [2] and mon.alarms == 1
    assert "category_id" not in " ".join(mon.alarm_reasons), "only the shifted feature is blamed"
    states = feed(mon, stream.slice(40_000, 10_000))  # back to normal: two clean windows in a row lower it
    assert states == [True, False] and mon.publishing_allowed  # lowered after the second clean window
    feed(mon, shifted)
    assert mon.alarm
    mon.clear()
    assert mon.publishing_allowed


def test_label_rate_and_serving_auc_alarms(stream: pa.Table) -> None:
    reference = stream.slice(0, 20_000)
    window = stream.slice(20_000, WINDOW)
    flipped = window.set_column(window.column_names.index("click"), "click", pc.subtract(1, window["click"]))
    mon = monitor(reference)
    feed(mon, flipped)
    assert mon.alarm and any("label rate" in r for r in mon.alarm_reasons)
    noise = np.random.default_rng(0).random(WINDOW)
    mon2 = monitor(reference)
    mon2.observe(window, noise)
    assert any("serving AUC" in r for r in mon2.alarm_reasons)


def test_psi_values_and_bad_input() -> None:
    same = np.array([0.25, 0.25, 0.5])
    assert psi(same, same) == 0.0
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))
    with pytest.raises(DataError, match="no column"):
        DriftMonitor(pa.table({"a": [1.0]}), ["b"])
    with pytest.raises(DataError, match="empty"):
        DriftMonitor(pa.table({"a": pa.array([], pa.float64())}), ["a"])
