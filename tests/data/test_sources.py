from __future__ import annotations

import pytest

from recforge.config.schema import DataConfig
from recforge.data import SOURCES, load_source
from recforge.errors import ConfigError


def test_registered_sources() -> None:
    assert SOURCES.names() == ["criteo", "movielens", "synthetic", "tables"]


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("movielens", "data.path"),
        ("criteo", "data.path"),
        ("tables", "data.tables"),
        ("samples", "data.source"),
    ],
)
def test_missing_settings_name_the_yaml_path(source: str, path: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        load_source(DataConfig(source=source))


def test_synthetic_is_the_default() -> None:
    cfg = DataConfig(synthetic={"n_users": 50, "n_items": 20, "n_categories": 3, "n_impressions": 500})
    raw = load_source(cfg)
    assert raw.summary() == {"behavior": 500, "users": 50, "items": 20}
