"""Hot model swaps: a watcher thread loads new versions off the request path and swaps them in atomically.

Requests read `slot.current` once and use that object to the end, so a swap never changes the model
under a request in flight; the swap itself is one reference assignment. A version that fails to load
is logged, counted, remembered (not retried until the directory changes again) and the old version
keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from recforge.bundle.stream import ModelVersion, current

log = logging.getLogger(__name__)


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


M = TypeVar("M", bound=Versioned)


@dataclass
class SwapEvents:
    """What happened to model versions since start (shown by /metrics and /v2/health)."""

    swaps: int = 0
    failures: int = 0
    last_error: str | None = None
    failed_version: str | None = None
    history: list[str] = field(default_factory=list)


class ModelSlot(Generic[M]):
    """Holds the model being served; `swap` replaces it in one assignment."""

    def __init__(self, model: M) -> None:
        self._model = model

    @property
    def current(self) -> M:
        return self._model

    def swap(self, model: M) -> M:
        old, self._model = self._model, model
        return old


class ModelWatcher(Generic[M]):
    """Polls a bundle or stream directory; loads and swaps in each new version.

    `load` turns a ModelVersion into a ready model (weights, precomputed item inputs, warm-up);
    it runs on the watcher thread, never on a request. `on_swap` / `on_failure` feed metrics.
    """

    def __init__(
        self,
        path: str | Path,
        slot: ModelSlot[M],
        load: Callable[[ModelVersion], M],
        poll_seconds: float = 1.0,
        on_swap: Callable[[M], None] | None = None,
        on_failure: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.slot = slot
        self.load = load
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self.on_failure = on_failure
        self.events = SwapEvents(history=[slot.current.version])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One poll: swap in a new version if there is one; True when a swap happened."""
        try:
            found = current(self.path)
        except Exception as exc:  # a pointer mid-update or a removed directory: report, keep serving
            self._failed(str(self.path), exc)
            return False
        if found.version in (self.slot.current.version, self.events.failed_version):
            return False
        try:
            model = self.load(found)
        except Exception as exc:
            self._failed(found.version, exc)
            return False
        self.slot.swap(model)
        self.events.swaps += 1
        self.events.failed_version = None
        self.events.history.append(model.version)
        log.info("swapped in model version %s from %s", model.version, found.path)
        if self.on_swap is not None:
            self.on_swap(model)
        return True

    def _failed(self, version: str, exc: Exception) -> None:
        if self.events.failed_version == version:
            return
        self.events.failures += 1
        self.events.failed_version = version
        self.events.last_error = f"{version}: {type(exc).__name__}: {exc}"
        log.error("model version %s failed to load, the old version keeps serving: %s", version, exc)
        if self.on_failure is not None:
            self.on_failure(version, exc)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="recforge-model-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (tests and the swap bench use it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
