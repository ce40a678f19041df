"""The real-host suite runs only when asked (`pytest -m hosts tests/hosts`, as `.ci/run`
does): it installs the agent CLIs from npm and runs each one, minutes of work."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import hostbin

RESULTS = Path(os.environ.get("AGENT_MESH_HOSTS_RESULTS", hostbin.CACHE / "results.json"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hosts)


@pytest.fixture(scope="session")
def results() -> Iterator[dict[str, Any]]:
    """What each host run saw, written for `tests/hosts/table.py` when the suite ends."""
    collected: dict[str, Any] = {}
    yield collected
    if collected:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous.update(collected)
        RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
