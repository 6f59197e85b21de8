"""Property tests (hypothesis): whatever a user writes into a config, a `--set` or a data column, only a
RecforgeError (ConfigError / DataError / FeatureError) escapes, never a Python traceback's exception."""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge.config import build_config
from recforge.errors import RecforgeError
from recforge.features import FeatureSet

from support import small_synthetic

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-like leaves a YAML file or a --set can carry, the awkward ones included
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(["data", "features", "model", "train", "eval", "recall", "online", "tasks", "engine", "x"])
SUBKEYS = st.one_of(
    st.sampled_from(["name", "kind", "dim", "epochs", "batch_size", "lr", "source", "label", "split", "optimizer"]),
    st.text(max_size=8),
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the tree (dict keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The test suite's small synthetic pipeline with one to three values replaced, added or removed."""
    tree = copy.deepcopy(small_synthetic())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        parent: Any = tree
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "add", "remove"]))
        if not path or action == "add":
            node = tree if not path else parent[path[-1]]
            if isinstance(node, dict):
                node[draw(SUBKEYS if path else KEYS)] = draw(VALUES)
            continue
        if action == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return tree


@SETTINGS
@given(mutated_configs())
def test_a_mutated_config_is_valid_or_a_config_error(tree: dict[str, Any]) -> None:
    with contextlib.suppress(RecforgeError):
        build_config(tree)


@SETTINGS
@given(st.lists(st.tuples(st.lists(SUBKEYS, min_size=1, max_size=3), st.text(max_size=12)), min_size=1, max_size=3))
def test_any_set_override_is_applied_or_a_config_error(sets: list[tuple[list[str], str]]) -> None:
    overrides = [f"{'.'.join(parts)}={value}" for parts, value in sets]
    with contextlib.suppress(RecforgeError):
        build_config(small_synthetic(), overrides)


@pytest.fixture(scope="module")
def fitted() -> FeatureSet:
    """Every feature kind of the small synthetic pipeline, fitted on a few clean rows."""
    cfg = build_config(small_synthetic())
    features = FeatureSet.from_config(cfg)
    rows = {name: _clean(name, features) for name in features.input_columns()}
    return features.fit([pa.table(rows)])


def _clean(column: str, features: FeatureSet) -> list[Any]:
    kinds = {name: f.config.kind for name, f in features.features.items()}
    numeric = any(kinds.get(name) == "numeric" and column in f.columns() for name, f in features.features.items())
    return [float(i) for i in range(8)] if numeric else [i % 3 for i in range(8)]


COLUMN_VALUES = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=6),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=6),
    st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=6),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=6),
)


@SETTINGS
@given(st.data())
def test_any_column_values_transform_or_raise_a_recforge_error(fitted: FeatureSet, data: st.DataObject) -> None:
    columns = fitted.input_columns()
    values = {c: data.draw(COLUMN_VALUES, label=c) for c in columns}
    n = min(len(v) for v in values.values())
    table = pa.table({c: pa.array(v[:n]) for c, v in values.items()})
    try:
        batch = fitted.transform(table, labels=False)
    except RecforgeError:
        return
    assert batch.size == n
    assert all(math.isfinite(x) for x in batch.dense.flatten().tolist()), "a NaN or inf reached the model"
    assert batch.ids.numel() == 0 or int(batch.ids.min()) >= 0, "a negative id row reached the model"
