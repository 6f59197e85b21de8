"""A small synthetic shop cut into daily partitions, a DAILY.yaml over it, and a fake clock for the daily
pipeline tests (no test sleeps: time moves when the pipeline waits)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recforge.config.schema import SyntheticConfig
from recforge.data.partitions import write_partitions
from recforge.data.readers import write_parquet
from recforge.data.synthetic import generate_synthetic

from support import REPO

EXAMPLE = REPO / "examples" / "daily"
# Small enough to train in seconds: ~2,000 impressions per day over the world's 30 days.
WORLD = SyntheticConfig(n_users=1_500, n_items=300, n_categories=10, n_impressions=60_000, seed=3)
SMALL_MODEL = ["model.deep.hidden=[16]", "train.batch_size=512", "recall.channels[0].top_n=20"]


@dataclass
class World:
    """users/items Parquet, and every day's finished partition in `staged` (landed into a test's events dir)."""

    root: Path
    users: Path
    items: Path
    staged: Path

    def land(self, events: Path, date: str, *, marker: bool = True) -> None:
        """Copy the date's partition into `events` (its `_SUCCESS` only with `marker`)."""
        target = events / f"dt={date}"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.staged / f"dt={date}" / "part-0.parquet", target / "part-0.parquet")
        if marker:
            (target / "_SUCCESS").touch()


def make_world(root: Path) -> World:
    raw = generate_synthetic(WORLD)
    assert raw.users is not None and raw.items is not None
    write_parquet(raw.users, str(root / "users.parquet"))
    write_parquet(raw.items, str(root / "items.parquet"))
    write_partitions(raw.behavior, "timestamp", str(root / "staged" / "dt={date}"))
    return World(root, root / "users.parquet", root / "items.parquet", root / "staged")


def write_daily(world: World, folder: Path, **changes: Any) -> Path:
    """DAILY.yaml in `folder` over the example's shop.yaml, the world's tables and folder/events partitions."""
    tree: dict[str, Any] = yaml.safe_load((EXAMPLE / "daily.yaml").read_text())
    tree.update(
        pipeline=str(EXAMPLE / "shop.yaml"),
        overrides=[f"data.tables.users={world.users}", f"data.tables.items={world.items}", *SMALL_MODEL],
        work="work",
        partitions={"path": "events/dt={date}", "timeout_s": 6 * 3600, "poll_s": 600},
        window_days=2,
        start="2024-01-02",
        gate={"max_auc_drop": 0.02},
    )
    tree.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "daily.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@dataclass
class FakeClock:
    """Starts at `now`; `sleep` moves time forward and runs the events that came due (partitions landing,
    a server coming back), in time order. `slept` records every wait asked for."""

    now_: dt.datetime
    events: list[tuple[dt.datetime, Callable[[], None]]] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)

    def now(self) -> dt.datetime:
        return self.now_

    def at(self, moment: dt.datetime, action: Callable[[], None]) -> None:
        self.events.append((moment, action))
        self.events.sort(key=lambda e: e[0])

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_ += dt.timedelta(seconds=seconds)
        while self.events and self.events[0][0] <= self.now_:
            self.events.pop(0)[1]()
