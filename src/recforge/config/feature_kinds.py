"""The feature-kind registry of the config layer: kind name -> config class, crossability, reference check.

A kind registers its config class with `@feature_kind("name", ...)`; `FeatureConfig` (the type of a
`features:` entry) dispatches on `kind` through this registry at validation time, so a kind registered
later (a plugin, a test) validates like a built-in one. The fit/transform class of a kind registers
separately in `recforge.features.FEATURE_KINDS` (config must not import features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic_core import core_schema

from recforge.registry import Registry

Side = Literal["user", "item", "context"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureBase(Strict):
    """Fields every feature kind has; a kind adds `kind: Literal["name"]` and its own settings."""

    kind: str
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Unique feature name.")
    column: str | None = Field(None, description="Input column; defaults to `name`.")
    side: Side = Field("context", description="user / item / context: what a request computes once.")
    dim: int | None = Field(None, ge=1, description="Embedding dim; defaults to `embedding_dim`.")

    @property
    def source(self) -> str:
        return self.column or self.name


class Where(NamedTuple):
    """The YAML path of the feature being checked and the file it came from (for ConfigError)."""

    path: str
    file: str


ReferenceCheck = Callable[[Any, Any, dict[str, str], Where], None]
"""(pipeline config, this feature's config, feature name -> kind, where) -> None or a ConfigError."""


@dataclass(frozen=True)
class FeatureKindConfig:
    """What the config layer knows of a kind: its config class, whether a cross may read it, its reference check."""

    config: type[FeatureBase]
    crossable: bool = False
    check: ReferenceCheck | None = None


FEATURE_CONFIGS: Registry[FeatureKindConfig] = Registry("feature kind")

F = TypeVar("F", bound=type[FeatureBase])


def feature_kind(name: str, *, crossable: bool = False, check: ReferenceCheck | None = None) -> Callable[[F], F]:
    """Class decorator registering a feature config class as kind `name`."""

    def add(cls: F) -> F:
        FEATURE_CONFIGS.register(name)(FeatureKindConfig(cls, crossable, check))
        return cls

    return add


def crossable_kinds() -> list[str]:
    """Kinds a cross feature may take as input."""
    return [name for name, kind in FEATURE_CONFIGS.entries().items() if kind.crossable]


class _KindDispatch:
    """Pydantic marker: validate a `features:` entry with the union of the kinds registered *now*.

    The union of the kinds registered when a model is built gives its JSON Schema; validation rebuilds the
    union when the registry changed, so errors keep pydantic's shapes (tag in the loc, unknown-tag message).
    """

    _adapters: ClassVar[dict[tuple[tuple[str, type[FeatureBase]], ...], TypeAdapter[Any]]] = {}

    @classmethod
    def adapter(cls) -> TypeAdapter[Any]:
        members = tuple((name, kind.config) for name, kind in FEATURE_CONFIGS.entries().items())
        if members not in cls._adapters:
            cls._adapters[members] = TypeAdapter(union_of(tuple(name for name, _ in members)))
        return cls._adapters[members]

    @staticmethod
    def members() -> list[type[FeatureBase]]:
        """The config classes of the kinds registered now."""
        return [kind.config for kind in FEATURE_CONFIGS.entries().values()]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any, _inner: Any) -> Any:
            return value if isinstance(value, FeatureBase) else _KindDispatch.adapter().validate_python(value)

        def dump(value: FeatureBase, info: core_schema.SerializationInfo) -> Any:
            return value.model_dump(
                mode=info.mode,
                by_alias=info.by_alias,
                exclude_none=info.exclude_none,
                exclude_unset=info.exclude_unset,
                exclude_defaults=info.exclude_defaults,
            )

        return core_schema.no_info_wrap_validator_function(
            validate,
            handler.generate_schema(union_of(tuple(FEATURE_CONFIGS.entries()))),
            serialization=core_schema.plain_serializer_function_ser_schema(dump, info_arg=True),
        )


def union_of(names: tuple[str, ...]) -> Any:
    """`A | B | ...` of the named kinds' config classes, discriminated by `kind`."""
    classes = [FEATURE_CONFIGS.get(n).config for n in names]
    if len(classes) == 1:
        return classes[0]
    union: Any = classes[0]
    for cls in classes[1:]:
        union = union | cls
    return Annotated[union, Field(discriminator="kind")]


FeatureConfig = Annotated[FeatureBase, _KindDispatch()]
"""One `features:` entry: the config class of its `kind`, looked up in FEATURE_CONFIGS."""
