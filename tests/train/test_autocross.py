"""AutoCross proxy: exact codes and weights on tiny inputs, and the planted cross found on a synthetic world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recforge.config import build_config
from recforge.errors import ConfigError
from recforge.pipeline.autocross import autocross, cross_entry
from recforge.train.autocross import Codes, FieldwiseLR, cross_codes, fit_field

from support import planted_synthetic


def test_cross_codes_number_train_pairs_and_mark_valid_only_pairs_unseen() -> None:
    a = Codes(np.array([0, 1, 1, 0]), np.array([1, 0, 2]), 3)
    b = Codes(np.array([1, 0, 0, 1]), np.array([0, 0, 1]), 2)
    c = cross_codes(a, b)
    # train pairs (0,1) (1,0) (1,0) (0,1) -> two combinations; valid (1,0) seen, (0,0) and (2,1) unseen
    assert c.train.tolist() == [0, 1, 1, 0]
    assert c.valid.tolist() == [1, 2, 2]
    assert c.size == 3


def test_fit_field_without_penalty_gives_each_value_its_log_odds() -> None:
    codes = np.repeat(np.arange(3), 100)
    labels = np.concatenate([np.arange(100) < k for k in (10, 50, 80)]).astype(float)
    w = fit_field(codes, 4, labels, np.zeros(codes.size), l2=0.0, iters=30)
    rates = np.array([0.1, 0.5, 0.8])
    np.testing.assert_allclose(w[:3], np.log(rates / (1 - rates)), atol=1e-6)
    assert w[3] == 0.0  # a value that never occurs keeps weight 0


def test_fieldwise_lr_recovers_additive_logits() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    x, z = rng.integers(0, 4, n), rng.integers(0, 3, n)
    wx, wz = np.array([-1.0, 0.0, 0.5, 1.0]), np.array([0.8, 0.0, -0.8])
    labels = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + wx[x] + wz[z])))).astype(float)
    fields = {"x": Codes(x, x, 4), "z": Codes(z, z, 3)}
    model = FieldwiseLR(l2=0.0, sweeps=10).fit(fields, labels)
    # identifiable up to one constant per field: compare differences to the first value
    got_x = model.weights["x"] - model.weights["x"][0]
    got_z = model.weights["z"] - model.weights["z"][0]
    np.testing.assert_allclose(got_x, wx - wx[0], atol=0.05)
    np.testing.assert_allclose(got_z, wz - wz[0], atol=0.05)


def test_search_finds_the_planted_cross_first(tmp_path: Path) -> None:
    cfg = build_config(planted_synthetic())
    run = autocross(cfg, tmp_path)
    accepted = run.result.accepted
    assert set(run.candidates) == {c.name for c in cfg.features}
    assert accepted[0].inputs == ("category_id", "city_tier")
    # Measured on this world (seed 1, 48k train rows): uplift +0.036, proxy AUC 0.789 -> 0.826.
    assert accepted[0].uplift > 0.02, accepted
    assert accepted[0].auc > run.result.base_auc + 0.02
    assert accepted[0].cells == 40  # 10 categories x 4 city tiers
    assert all("noise_1" not in a.inputs and "noise_2" not in a.inputs for a in accepted)
    assert [a.auc for a in accepted] == sorted(a.auc for a in accepted)
    assert run.crosses[0] == {
        "name": "category_id_x_city_tier",
        "kind": "cross",
        "side": "context",
        "inputs": ["category_id", "city_tier"],
        "buckets": 1000,
    }


def test_cross_entry_keeps_names_unique_and_sides_shared() -> None:
    cfg = build_config(planted_synthetic())
    taken = {"age_x_gender"}
    entry = cross_entry(("age", "gender"), 20_000, cfg, taken)
    assert entry["name"] == "age_x_gender_auto" and entry["side"] == "user" and entry["buckets"] == 1_000_000


def test_search_needs_a_valid_split(tmp_path: Path) -> None:
    tree = planted_synthetic()
    tree["data"]["split"] = {"method": "random", "ratios": [1.0, 0.0, 0.0]}
    with pytest.raises(ConfigError, match=r"data\.split: autocross scores crosses on a valid split"):
        autocross(build_config(tree), tmp_path)
