"""The daily pipeline tests share one synthetic shop cut into daily partitions."""

from __future__ import annotations

import pytest
from daily_world import World, make_world


@pytest.fixture(scope="session")
def shop_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("shop_world"))
