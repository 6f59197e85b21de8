"""Load a pipeline YAML with `--set` overrides; every problem is reported with its YAML path."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from recforge.config.checks import check_references
from recforge.config.problems import format_validation_error, parse_key, yaml_path
from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "apply_override",
    "build_config",
    "format_validation_error",
    "json_schema",
    "load_config",
    "load_tree",
    "parse_value",
    "set_path",
    "validate_block",
    "yaml_path",
]


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars/lists: `0.01`, `true`, `[64, 32]`, `deepfm`; text that is not valid
    YAML (`a: b: c`, an unclosed `[`) is taken as the string it is, for the config's own checks to judge."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply `a.b[2].c=value` to a nested dict/list tree in place."""
    if "=" not in assignment:
        raise ConfigError(assignment, "an override must look like dotted.path=value", fix="e.g. --set train.lr=0.01")
    key, _, raw = assignment.partition("=")
    set_path(tree, key, parse_value(raw))


def set_path(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b[2].c` to a Python value in a nested dict/list tree in place (missing mappings are created)."""
    parts = parse_key(key)
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(key, f"index {part} is out of range", fix="check the list length")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(key, f"{part!r} is under a value that is not a mapping", fix="check the key")
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise ConfigError(key, f"index {last} is out of range", fix="set an existing item, or the next one to add")
        node[last : last + 1] = [value]  # the index one past the end appends
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(key, "cannot set a key on a non-mapping value")


def load_tree(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.exists():
        raise ConfigError("", f"config file {file} does not exist", fix="give the path of a pipeline YAML")
    try:
        tree = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("", f"is not valid YAML: {exc}", file=str(file)) from exc
    if not isinstance(tree, dict):
        raise ConfigError("", "the top level must be a mapping", file=str(file))
    return tree


def build_config(tree: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), file: str = "") -> PipelineConfig:
    """Validate a config tree after applying `--set` overrides."""
    tree = json.loads(json.dumps(tree))
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        cfg = PipelineConfig.model_validate(tree)
    except ValidationError as err:
        raise format_validation_error(err, file, PipelineConfig, overrides) from None
    cfg.model._overrides = tuple(overrides)  # validated later, by the chosen model's own config class
    check_references(cfg, file)
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read, override and validate a pipeline YAML. Relative data paths stay relative to the CWD."""
    return build_config(load_tree(path), overrides, file=str(path))


def json_schema() -> dict[str, Any]:
    """JSON Schema of the pipeline YAML, for editors; rebuilt so it names the feature kinds registered now."""
    PipelineConfig.model_rebuild(force=True)
    return PipelineConfig.model_json_schema()


def validate_block(model: type[M], tree: dict[str, Any], file: str = "", overrides: Sequence[str] = ()) -> M:
    """Any config block (gate, FTRL job, ...) with `--set` overrides applied, validated with errors that name
    the YAML path or the `--set` argument."""
    tree = copy.deepcopy(tree)
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise format_validation_error(err, file, model, overrides) from None
