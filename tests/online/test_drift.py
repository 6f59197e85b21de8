"""Drift monitor on the synthetic click stream: a shifted feature raises the alarm within two windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recforge.bundle.drift_status import WINDOWS, append_drift_window, read_drift_windows
from recforge.config.schema import SyntheticConfig
from recforge.data.synthetic import generate_synthetic
from recforge.errors import DataError
from recforge.online.drift import DriftConfig, DriftMonitor, distribution_shift, psi
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


def test_distribution_shift_is_the_psi_the_monitor_judges_and_names_its_bins(stream: pa.Table) -> None:
    reference, window = stream.slice(0, 20_000), stream.slice(20_000, WINDOW)
    mon = monitor(reference)
    mon.observe(window)
    for column in ("price", "category_id", "position"):
        shift = distribution_shift(reference[column], window[column])
        assert shift.psi == mon.reports[0].psi[column]
        assert len(shift.labels) == len(shift.expected) == len(shift.actual)
    price = distribution_shift(reference["price"], window["price"])
    assert price.labels[0].startswith("< ") and price.labels[-2].startswith(">= ") and price.labels[-1] == "missing"
    words = distribution_shift(pa.array(["a"] * 6 + ["b"] * 3 + ["c"]), pa.array(["a", "d", None]))
    assert words.labels == ["a", "b", "c", "other / missing"]  # most frequent first, then the rest
    np.testing.assert_allclose(words.actual, [1 / 3, 0, 0, 2 / 3])


def test_drift_windows_are_appended_and_read_back(stream: pa.Table, tmp_path: Path) -> None:
    mon = monitor(stream.slice(0, 20_000))
    reports = mon.observe(stream.slice(20_000, 3 * WINDOW))
    for report in reports:
        append_drift_window(tmp_path, report.to_json())
    assert read_drift_windows(tmp_path) == [r.to_json() for r in reports] and len(reports) == 3
    with (tmp_path / WINDOWS).open("a") as out:
        out.write('{"window": 3, "ro')  # a writer killed mid-line: the last line is cut short
    assert len(read_drift_windows(tmp_path)) == 3
    (tmp_path / WINDOWS).write_text('{"window": 0}\nnot json\n{"window": 2}\n')
    with pytest.raises(DataError, match=r"drift_windows.jsonl:2: not a JSON object"):
        read_drift_windows(tmp_path)
