"""Config loading: every problem named by YAML path, overrides by dotted path, JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recforge import pipeline
from recforge.config import build_config, json_schema, load_config
from recforge.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASE = {"features": [{"name": "user_id", "kind": "id"}, {"name": "age", "kind": "numeric"}]}


def test_all_problems_are_reported_at_once_with_paths() -> None:
    tree = {
        "features": [{"name": "a", "kind": "id"}, {"name": "b", "kind": "numeric", "boundaries": []}],
        "train": {"batch_size": 0, "epocs": 3},
    }
    with pytest.raises(ConfigError) as info:
        build_config(tree, file="p.yaml")
    text = str(info.value)
    assert text.startswith("p.yaml: config: 3 problem(s)")
    assert "features[1].boundaries" in text and "train.batch_size" in text and "train.epocs" in text


def test_unknown_feature_kind_names_the_allowed_kinds() -> None:
    with pytest.raises(ConfigError, match=r"features\[0\].*'id', 'numeric'"):
        build_config({"features": [{"name": "a", "kind": "idd"}]})


def test_overrides_by_dotted_path_and_index() -> None:
    cfg = build_config(
        BASE, ["train.optimizer.lr=0.05", "features[1].boundaries=[1, 2]", "model.name=fm", "train.compile=true"]
    )
    assert cfg.train.optimizer.lr == 0.05 and cfg.features[1].boundaries == [1, 2]  # type: ignore[union-attr]
    assert cfg.model.name == "fm" and cfg.train.compile is True
    with pytest.raises(ConfigError, match=r"dotted\.path=value"):
        build_config(BASE, ["train.lr"])


def test_an_index_one_past_the_end_appends_and_further_is_an_error() -> None:
    cfg = build_config(BASE, ["features[2]={name: extra, kind: id}"])
    assert [f.name for f in cfg.features][-1] == "extra" and len(cfg.features) == 3
    with pytest.raises(ConfigError, match=r"features\[5\]: index 5 is out of range"):
        build_config(BASE, ["features[5]={name: extra, kind: id}"])


def test_cross_field_references_are_checked() -> None:
    bad = {"features": [*BASE["features"], {"name": "x", "kind": "cross", "inputs": ["user_id", "nope"]}]}
    with pytest.raises(ConfigError, match=r"features\[2\] \(x\): input 'nope'"):
        build_config(bad)
    with pytest.raises(ConfigError, match="used twice"):
        build_config({"features": [{"name": "a", "kind": "id"}, {"name": "a", "kind": "id"}]})
    with pytest.raises(ConfigError, match=r"data\.path"):
        build_config({**BASE, "data": {"source": "movielens"}})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("features: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    tree = yaml.safe_load(path.read_text())
    cfg = build_config(tree, ["data.path=somewhere"] if tree["data"].get("source") == "movielens" else [])
    assert cfg.features or cfg.recall  # a ranking or a recall pipeline
    if cfg.features:
        pipeline.check(cfg)
    if cfg.recall:
        pipeline.check_recall(cfg)


def test_json_schema_names_every_feature_kind() -> None:
    schema = json_schema()
    text = str(schema)
    for kind in ("id", "numeric", "tag", "sequence", "cross", "lookup"):
        assert f"'const': '{kind}'" in text or f"'enum': ['{kind}']" in text
