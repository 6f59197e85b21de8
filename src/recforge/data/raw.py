"""RawTables: what every data source returns, before joining, labelling and splitting."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class RawTables:
    """A behavior log plus optional user and item side tables, joined later on `user_key` / `item_key`.

    `origin` names where the tables came from (a path or generator) so later errors can point at it.
    """

    behavior: pa.Table
    users: pa.Table | None = None
    items: pa.Table | None = None
    user_key: str = "user_id"
    item_key: str = "item_id"
    origin: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # reading counts (e.g. behavior_bad_lines) for reports

    def summary(self) -> dict[str, int]:
        """Row counts per table, for logs and run reports."""
        out = {"behavior": self.behavior.num_rows}
        if self.users is not None:
            out["users"] = self.users.num_rows
        if self.items is not None:
            out["items"] = self.items.num_rows
        return out
