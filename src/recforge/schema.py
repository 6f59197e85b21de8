"""InputSchema: what a model sees of the fitted features (fields, embedding tables, labels).

Legend used in shapes across recforge: B = batch rows, F = fields, L = bag length, D = embedding dim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FieldKind = Literal["id", "bag", "dense"]


@dataclass(frozen=True)
class TableSpec:
    """One embedding table; several fields may share it (a sequence shares its `of` feature's table)."""

    name: str
    num_embeddings: int  # rows, row 0 included (OOV / missing / padding)
    dim: int
    storage: dict[str, Any] = field(default_factory=lambda: {"kind": "static"})


@dataclass(frozen=True)
class FieldSpec:
    """One model input: an id column of Batch.ids, a bag in Batch.bags, or a column of Batch.dense."""

    name: str
    kind: FieldKind
    side: str
    table: str | None = None  # id / bag fields: the embedding table they read
    dim: int = 0
    max_len: int = 1  # bag fields: padded length L
    pooling: str = "mean"
    sequence_of: str | None = None  # sequence fields: the id field whose values they hold
    attrs: tuple[str, ...] = ()  # sequence fields: features describing each element (Bag.attrs keys)


@dataclass(frozen=True)
class InputSchema:
    fields: tuple[FieldSpec, ...]
    tables: tuple[TableSpec, ...]
    labels: tuple[str, ...] = ("label",)
    tasks: tuple[str, ...] = ()  # multi-task models: output columns, in order ([B, T] logits); () = one logit [B]

    @property
    def id_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "id")

    @property
    def bag_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "bag")

    @property
    def dense_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "dense")

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        out = {
            "fields": [asdict(f) for f in self.fields],
            "tables": [asdict(t) for t in self.tables],
            "labels": list(self.labels),
        }
        return {**out, "tasks": list(self.tasks)} if self.tasks else out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSchema:
        return cls(
            fields=tuple(FieldSpec(**{**f, "attrs": tuple(f.get("attrs", ()))}) for f in data["fields"]),
            tables=tuple(TableSpec(**t) for t in data["tables"]),
            labels=tuple(data["labels"]),
            tasks=tuple(data.get("tasks", ())),
        )
