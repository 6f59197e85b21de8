"""Item-to-item (and user-to-user) similarity jobs: ItemCF, Swing and UserCF on DuckDB, numpy or Spark.

A behavior table goes in; per item its top-N similar items comes out as a long Arrow table, the same
on every engine to the last bit. See `run_i2i`, `to_text_form` and `write_i2i`.
"""

from recforge.recall.i2i.job import I2IResult, run_i2i, to_text_form, write_i2i
from recforge.recall.i2i.plan import ENGINES

__all__ = ["ENGINES", "I2IResult", "run_i2i", "to_text_form", "write_i2i"]
