"""A small circuit breaker: after a backend failure, skip it for a backoff that doubles up to a cap.

While open, lookups go straight to the fallback or defaults (microseconds, no socket wait); once the
backoff has passed, the next call is let through as a probe, and its success closes the circuit. This is
what lets a store recover by itself when its server comes back, without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Circuit:
    """Healthy (closed) until `failure()`; then `allow()` is False until the current backoff has passed."""

    def __init__(self, min_s: float, max_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self._clock = clock
        self._lock = threading.Lock()
        self.healthy = True
        self._delay = min_s
        self._retry_at = 0.0

    def allow(self) -> bool:
        """Whether to call the backend now: always when healthy, else once the backoff has passed."""
        return self.healthy or self._clock() >= self._retry_at

    def success(self) -> bool:
        """Close the circuit; True when this call recovered it from a failure."""
        with self._lock:
            recovered = not self.healthy
            self.healthy, self._delay = True, self.min_s
            return recovered

    def failure(self) -> float:
        """Open the circuit for the current backoff, double the next one; returns the wait in seconds."""
        with self._lock:
            wait = self._delay
            self.healthy = False
            self._retry_at = self._clock() + wait
            self._delay = min(self._delay * 2, self.max_s)
            return wait
