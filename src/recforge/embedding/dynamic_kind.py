"""The `dynamic` storage kind: a DynamicTable, or with `tier:` a TieredTable.

Its own module, the one place that knows both tables, so the tiered table builds on the dynamic one
without the dynamic package importing it back.
"""

from __future__ import annotations

from torch import nn

from recforge.config.features import DynamicStorage
from recforge.embedding.dynamic.table import DynamicTable
from recforge.embedding.tables import TABLES
from recforge.embedding.tiered import TieredTable
from recforge.schema import TableSpec


@TABLES.register("dynamic")
def build_dynamic(spec: TableSpec, dim: int) -> nn.Module:
    """A DynamicTable, or with `tier:` set a TieredTable (hot rows in RAM, the rest in a row file)."""
    config = DynamicStorage.model_validate(spec.storage)
    if config.tier is None:
        return DynamicTable(dim, config)
    return TieredTable(dim, config, name=spec.name)
