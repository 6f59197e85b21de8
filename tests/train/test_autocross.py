"""AutoCross proxy: exact codes and weights on tiny inputs, and the planted cross found on a synthetic world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recforge.config import build_config
from recforge.errors import ConfigError, DataError
from recforge.pipeline.autocross import autocross, cross_entry
from recforge.train.autocross import Codes, FieldwiseLR, SearchOptions, cross_codes, fit_field, search_crosses
from recforge.train.autocross_criteria import CRITERIA, ProxyRows

from support import id_level_cross_world, planted_synthetic


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
    # Measured on this world (seed 1, 48k train rows, criterion unseen_users): uplift +0.048, proxy AUC 0.778 -> 0.829
    # (criterion valid: +0.036, 0.789 -> 0.826).
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


def test_unseen_users_fits_on_some_users_and_scores_on_all_rows_of_the_others() -> None:
    train = np.array([5, 7, 5, 9, 11, 7, 13])
    valid = np.array([7, 9, 15, 5])
    rows = CRITERIA.get("unseen_users")(train, valid, 0.5, 0)
    fitted = set(train[rows.fit])
    held = set(train[rows.score_train]) | set(valid[rows.score_valid])
    assert fitted and held and not fitted & held  # users split into two disjoint groups
    assert rows.fit.sum() + rows.score_train.sum() == len(train)  # each train row fits or scores
    assert not set(valid[~rows.score_valid]) & held  # a valid row is scored exactly when its user is held out
    assert fitted | held | set(valid) == {5, 7, 9, 11, 13, 15}
    codes, labels = rows.split(np.arange(7), np.arange(10, 14))
    assert codes.tolist() == np.flatnonzero(rows.fit).tolist()
    assert labels.tolist() == [*np.flatnonzero(rows.score_train), *(10 + np.flatnonzero(rows.score_valid))]
    everything = CRITERIA.get("valid")(train, valid, 0.5, 0)
    assert everything.fit.all() and not everything.score_train.any() and everything.score_valid.all()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unseen_users_accepts_the_planted_coarse_cross_and_no_user_id_cross(tmp_path: Path, seed: int) -> None:
    # Measured (bench/autocross_unseen_users.py): category_id x city_tier first with uplift +0.09..+0.11 over
    # item_id x city_tier +0.07 (the runner-up); scored on the valid split the search takes user_id x
    # category_id first instead (+0.10..+0.15), as the last assertion shows for seed 0.
    cfg = build_config(id_level_cross_world(seed))
    accepted = autocross(cfg, tmp_path).result.accepted
    assert accepted[0].inputs == ("category_id", "city_tier"), accepted
    assert accepted[0].uplift > 0.05, accepted
    assert all("user_id" not in a.inputs for a in accepted), accepted
    if seed == 0:
        memorised = autocross(cfg, tmp_path / "valid", SearchOptions(criterion="valid")).result.accepted
        assert memorised[0].inputs == ("user_id", "category_id"), memorised


def test_unknown_criterion_is_a_config_error(tmp_path: Path) -> None:
    cfg = build_config(planted_synthetic())
    with pytest.raises(ConfigError, match=r"(?s)--criterion: unknown autocross criterion 'unseen'.*unseen_users"):
        autocross(cfg, tmp_path, SearchOptions(criterion="unseen"))


def test_missing_holdout_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = build_config(planted_synthetic())
    with pytest.raises(ConfigError, match=r"--holdout-key: the samples have no column 'visitor'"):
        autocross(cfg, tmp_path, SearchOptions(holdout_key="visitor"))


def test_scoring_rows_of_one_class_are_a_data_error() -> None:
    codes = Codes(np.array([0, 1, 0, 1]), np.array([0, 1]), 2)
    rows = ProxyRows(np.array([True, True, True, False]), np.array([False, False, False, True]), np.ones(2, bool))
    labels_train, labels_valid = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.0])  # scored rows: all 0
    with pytest.raises(DataError, match=r"single class.*\n  fix: sample more rows"):
        search_crosses({"a": codes, "b": codes}, labels_train, labels_valid, ["a", "b"], rows=rows)
