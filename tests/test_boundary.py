"""The layers hold at run time, not only in import-linter's static graph: importing any
core module in a fresh interpreter loads no textual, rich or MCP SDK, and importing any
agents module loads no textual or rich (an agent's MCP server must not pay for a UI).

`python -m mesh_core` (mesh_core.__main__) is skipped: importing it runs the CLI."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import mesh_agents
import mesh_core

CHECK = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[2:])))
"""
RUNS_ON_IMPORT = {"mesh_core.__main__", "mesh_agents.__main__"}


def _modules(package: ModuleType) -> list[str]:
    found = [package.__name__] + [
        info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    return [name for name in found if name not in RUNS_ON_IMPORT]


def _loaded(module: str, *packages: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, module, *packages],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_the_lists_of_modules_are_complete() -> None:
    core = _modules(mesh_core)
    for expected in (
        "mesh_core.mesh",
        "mesh_core.db",
        "mesh_core.participant",
        "mesh_core.identity",
        "mesh_core.text",
        "mesh_core.views",
    ):
        assert expected in core
    agents = _modules(mesh_agents)
    for expected in (
        "mesh_agents.mcp_server",
        "mesh_agents.hooks",
        "mesh_agents.install",
        "mesh_agents.simulated",
    ):
        assert expected in agents


@pytest.mark.parametrize("module", _modules(mesh_core))
def test_core_module_imports_no_ui_nor_mcp(module: str) -> None:
    assert _loaded(module, "textual", "rich", "mcp") == [], module


@pytest.mark.parametrize("module", _modules(mesh_agents))
def test_agents_module_imports_no_ui(module: str) -> None:
    assert _loaded(module, "textual", "rich") == [], module
