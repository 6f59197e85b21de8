"""Load a pipeline YAML with `--set` overrides; every problem is reported with its YAML path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from recforge.config.checks import check_references
from recforge.config.features import FEATURE_KINDS
from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def yaml_path(loc: tuple[str | int, ...]) -> str:
    """('features', 2, 'numeric', 'boundaries') -> 'features[2].boundaries' (union tags skipped)."""
    out, prev = "", None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(prev, int) and part in FEATURE_KINDS):
            out += f".{part}" if out else str(part)
        prev = part
    return out


def format_validation_error(err: ValidationError, file: str = "") -> ConfigError:
    """All of pydantic's problems at once, one line each: path, message, value given."""
    lines = []
    for e in err.errors():
        given = e.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {yaml_path(tuple(e['loc'])) or '<root>'}: {e['msg']}{shown}")
    return ConfigError("config", f"{len(lines)} problem(s):\n" + "\n".join(lines), file=file)


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars/lists: `0.01`, `true`, `[64, 32]`, `deepfm`."""
    return yaml.safe_load(text)


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply `a.b[2].c=value` to a nested dict/list tree in place."""
    if "=" not in assignment:
        raise ConfigError(assignment, "an override must look like dotted.path=value", fix="e.g. --set train.lr=0.01")
    key, _, raw = assignment.partition("=")
    set_path(tree, key, parse_value(raw))


def set_path(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b[2].c` to a Python value in a nested dict/list tree in place (missing mappings are created)."""
    parts: list[str | int] = []
    for token in key.strip().split("."):
        name, _, rest = token.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(int(index))
            rest = rest.lstrip("[")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(key, f"index {part} is out of range", fix="check the list length")
            node = node[part]
        else:
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
        raise format_validation_error(err, file) from None
    check_references(cfg, file)
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read, override and validate a pipeline YAML. Relative data paths stay relative to the CWD."""
    return build_config(load_tree(path), overrides, file=str(path))


def json_schema() -> dict[str, Any]:
    """JSON Schema of the pipeline YAML, for editors."""
    return PipelineConfig.model_json_schema()


def validate_block(model: type[M], tree: dict[str, Any], file: str = "") -> M:
    """Any config block (gate, FTRL job, ...) validated with errors that name the YAML path."""
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise format_validation_error(err, file) from None
