"""Dynamic embedding tables (`storage: {kind: dynamic}`): collision-free, growing, with admission and eviction.

index.py      int64 id -> slot (open addressing)
admission.py  when an unknown id gets a row (exact counts or a counting Bloom filter)
eviction.py   which rows go (idle, small norm, least frequent over max_rows)
optimizer.py  the row update fused into backward (row-wise Adagrad, lazy Adam)
state.py      the state_dict arrays, and `read_rows`, the one way rows are read by slot
table.py      `DynamicTable`, which composes them
The `dynamic` storage kind is built in `recforge.embedding.dynamic_kind` (plain or tiered).
"""

from recforge.embedding.dynamic.state import SLOT_ARRAYS, STATE, read_rows
from recforge.embedding.dynamic.table import DynamicTable, dynamic_tables, evict_all

__all__ = ["SLOT_ARRAYS", "STATE", "DynamicTable", "dynamic_tables", "evict_all", "read_rows"]
