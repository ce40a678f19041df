"""Shared fixtures: a fresh database file, a clock that only moves when told, a Mesh on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mesh_core import FixedClock, Mesh

if TYPE_CHECKING:
    from tui_fixtures import World


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


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The TUI tests' mesh of agents, threads and a person (tests/tui_fixtures.py),
    imported here only when a test asks for it: most tests never load textual."""
    from tui_fixtures import build_world

    built = build_world(tmp_path / "agent-mesh.db")
    yield built
    built.mesh.close()
