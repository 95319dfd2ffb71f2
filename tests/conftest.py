from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit import System


@pytest.fixture
def make_system(tmp_path: Path) -> Iterator[object]:
    """Factory: make_system(**env) -> System; every system started is shut down after the test."""
    systems: list[System] = []

    def factory(**config: object) -> System:
        system = System(tmp_path / f"qts{len(systems)}", **config)
        systems.append(system)
        return system

    yield factory
    for system in systems:
        system.stop()
