"""Shared fixtures: a fresh database file, a clock that only moves when told, a Mesh on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_core import FixedClock, Mesh


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database path in a folder that does not exist yet (the mesh creates both)."""
    return tmp_path / "mesh" / "agent-mesh.db"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock("2026-11-23T14:00:00.000Z")


@pytest.fixture
def mesh(db_path: Path, clock: FixedClock) -> Iterator[Mesh]:
    handle = Mesh(db_path, clock=clock)
    yield handle
    handle.close()
