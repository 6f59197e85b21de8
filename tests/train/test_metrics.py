"""Metric code against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recforge.errors import ConfigError
from recforge.train.metrics import auc, gauc, logloss, parse_metrics


def test_auc_counts_ordered_pairs_and_ties_as_half() -> None:
    # pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok -> 3/4
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_gauc_weights_groups_by_size_and_skips_one_class_groups() -> None:
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.3, 0.6])
    groups = np.array(["a", "a", "b", "b", "b", "c", "c"])
    # group a: AUC 1 (2 rows); group b: pos 0.2 vs negs 0.8, 0.5 -> 0 (3 rows); group c: one class, skipped
    assert gauc(labels, scores, groups) == pytest.approx((1 * 2 + 0 * 3) / 5)


def test_logloss_matches_the_formula() -> None:
    assert logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_metric_names_are_validated_with_the_yaml_path() -> None:
    assert [m.key for m in parse_metrics(["auc", "gauc@user_id"])] == [None, "user_id"]
    with pytest.raises(ConfigError, match=r"eval\.metrics\[1\]"):
        parse_metrics(["auc", "gauc"])
