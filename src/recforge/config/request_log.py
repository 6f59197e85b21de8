"""The `serving.logging:` block: sampled request logs that `recforge skew check` replays through the batch path."""

from __future__ import annotations

from pydantic import Field

from recforge.config.features import Strict


class RequestLogConfig(Strict):
    """Log a sample of /recommend requests: raw inputs, the model inputs computed online, and the scores."""

    path: str = Field(
        description="A `.jsonl` file, or a directory that gets one `requests-PID.jsonl` per server process "
        "(give a directory when http.workers > 1). Relative paths resolve against the serving YAML."
    )
    sample_rate: float = Field(0.01, ge=0.0, le=1.0, description="Fraction of requests logged (1.0: every one).")
    max_bytes: int = Field(64 * 2**20, ge=1024, description="Rotate the file when it would grow past this many bytes.")
    max_files: int = Field(5, ge=1, description="Rotated files kept beside the live one (`NAME.1.jsonl` newest).")
    queue: int = Field(
        1024,
        ge=1,
        description="Records waiting for the writer thread; when it is full a record is dropped (counted in "
        "`recforge_request_log_dropped`), never waited for.",
    )


class LoggingConfig(Strict):
    """What the service writes beside its answers; everything is off by default."""

    requests: RequestLogConfig | None = Field(None, description="Sampled request log for `recforge skew check`.")


__all__ = ["LoggingConfig", "RequestLogConfig"]
