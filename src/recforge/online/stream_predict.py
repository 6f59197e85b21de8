"""Score an event stream with whatever version a model stream serves, writing rows + scores to another stream.

Every version is a bundle (full, delta, or published by `recforge stream ftrl`) scored by `score_table`,
the path `recforge predict` runs. The served version is re-checked every `poll_s` seconds and swapped
between batches; every output row names the version that scored it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from recforge.bundle import load_bundle, score_table
from recforge.bundle.stream import current
from recforge.data.streams import StreamSource, open_sink, open_source

log = logging.getLogger(__name__)


@dataclass
class PredictReport:
    rows: int = 0
    versions: list[str] = field(default_factory=list)


def predict_stream(
    models: str | Path,
    source: str | StreamSource,
    sink_url: str,
    *,
    score_column: str = "score",
    batch_size: int = 4096,
    poll_s: float = 1.0,
    until_idle_s: float | None = None,
    max_rows: int | None = None,
) -> PredictReport:
    """Read, score with the served version, write rows + `score_column` + `model_version`, then ack."""
    report = PredictReport()
    src = open_source(source) if isinstance(source, str) else source
    served = current(models)
    bundle, checked = load_bundle(served.path), time.monotonic()
    report.versions.append(served.version)
    idle_since = time.monotonic()
    with open_sink(sink_url) as sink:
        while max_rows is None or report.rows < max_rows:
            if time.monotonic() - checked >= poll_s:
                checked, now = time.monotonic(), current(models)
                if now.version != served.version:
                    served, bundle = now, load_bundle(now.path)
                    report.versions.append(now.version)
                    log.info("stream predict now scores with %s", now.version)
            batch = src.read(batch_size, 500)
            if batch is None:
                if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            scores = score_table(bundle, batch.table)
            out = batch.table.append_column(score_column, pa.array(scores, pa.float64()))
            out = out.append_column("model_version", pa.array([served.version] * out.num_rows, pa.string()))
            sink.write(out)
            src.ack(batch)
            report.rows += batch.num_rows
    return report
