"""Pydantic's validation errors as recforge reports them: one line per problem at its YAML path, an
unknown key with the nearest known one ("did you mean"), and a problem that a `--set` override
introduced reported against that `--set` argument rather than the YAML file.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from recforge.config.feature_kinds import FEATURE_CONFIGS
from recforge.errors import ConfigError

Loc = tuple[str | int, ...]


def yaml_path(loc: Loc) -> str:
    """('features', 2, 'numeric', 'boundaries') -> 'features[2].boundaries' (union tags skipped)."""
    out, prev = "", None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(prev, int) and part in FEATURE_CONFIGS):
            out += f".{part}" if out else str(part)
        prev = part
    return out


def parse_key(key: str) -> list[str | int]:
    """The dotted path of a `--set` key: 'features[2].dim' -> ['features', 2, 'dim'].

    An empty name ('a..b') or an index that is not a whole number ('features[x]') is a ConfigError.
    """
    parts: list[str | int] = []
    fix = "write the key as dotted.names with [N] list indexes, e.g. features[2].dim"
    for token in key.strip().split("."):
        name, bracket, rest = token.partition("[")
        if not name and not (bracket and parts):
            raise ConfigError(key or "--set", "an empty name in the key", fix=fix)
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise ConfigError(key, f"list index {index!r} is not a whole number", fix=fix)
            parts.append(int(index))
            rest = rest.lstrip("[")
    return parts


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: Optional/Union/Annotated unwrapped, a registry-dispatched type's members."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        dispatched = [m for meta in metadata if hasattr(meta, "members") for m in meta.members()]
        return dispatched or _members(base)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_tag(model: type[BaseModel], part: str) -> bool:
    """Whether `part` is the union tag pydantic put in the loc for `model` (its Literal `kind`, or its name)."""
    literals = (f.annotation for f in model.model_fields.values() if typing.get_origin(f.annotation) is typing.Literal)
    return model.__name__ == part or any(part in typing.get_args(lit) for lit in literals)


def _step(annotation: Any, part: str | int) -> list[Any]:
    """The annotations one loc part leads to from `annotation` (several for a union not yet narrowed)."""
    found: list[Any] = []
    for member in _members(annotation):
        args = typing.get_args(member)
        if isinstance(part, int) and typing.get_origin(member) in (list, tuple) and args:
            found.append(args[0])
        elif isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            if part in member.model_fields:
                found.append(member.model_fields[part].annotation)
            elif _is_tag(member, part):
                found.append(member)
        elif typing.get_origin(member) is dict and len(args) == 2:
            found.append(args[1])
    return found


def known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a mapping at `loc` (the parent of an unknown key) may hold, per the config classes."""
    current: list[Any] = [model]
    for part in loc:
        current = [nxt for annotation in current for nxt in _step(annotation, part)]
    members = [m for a in current for m in _members(a) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted({name for m in members for name in m.model_fields})


def _problem(e: ErrorDetails, model: type[BaseModel] | None) -> str:
    given = e.get("input")
    if e["type"] == "extra_forbidden" and model is not None and e["loc"]:
        key = str(e["loc"][-1])
        known = known_keys(model, tuple(e["loc"][:-1]))
        guess = difflib.get_close_matches(key, known, n=1)
        if guess:
            return f"unknown key {key!r} (did you mean {guess[0]!r}?)"
        return f"unknown key {key!r}" + (f"; known keys: {', '.join(known)}" if known else "")
    return f"{e['msg']}" + ("" if isinstance(given, dict) else f" (got {given!r})")


def _override_for(loc: Loc, overrides: Sequence[str]) -> str | None:
    """The last `--set` argument whose key is `loc` or a parent of it (that override put the value there)."""
    path = yaml_path(loc)
    for assignment in reversed(overrides):
        key = yaml_path(tuple(parse_key(assignment.partition("=")[0])))
        if path == key or path.startswith((f"{key}.", f"{key}[")):
            return f"--set {assignment}"
    return None


def format_validation_error(
    err: ValidationError,
    file: str = "",
    model: type[BaseModel] | None = None,
    overrides: Sequence[str] = (),
    prefix: str = "",
    title: str = "",
) -> ConfigError:
    """All of pydantic's problems at once, one line each, at their YAML path (`prefix` + loc) or `--set` argument.

    `model`: the class validated, so an unknown key can be matched against the known ones; `title` names
    what was validated (e.g. a recall channel) above the problem lines.
    """
    problems: list[tuple[str, str, bool]] = []  # (where, problem, from the file)
    for e in err.errors():
        loc = tuple(e["loc"])
        setting = _override_for((*parse_key(prefix), *loc) if prefix else loc, overrides)
        where = setting or ".".join(p for p in (prefix, yaml_path(loc)) if p) or "<root>"
        problems.append((where, _problem(e, model), setting is None))
    in_file = file if any(from_file for *_, from_file in problems) else ""
    if len(problems) == 1 and not title:
        return ConfigError(problems[0][0], problems[0][1], file=in_file)
    lines = "\n".join(f"  {where}: {problem}" for where, problem, _ in problems)
    head = f"{title}: " if title else ""
    return ConfigError(prefix or "config", f"{head}{len(problems)} problem(s):\n{lines}", file=in_file)
