"""mesh_core never imports textual, nor rich outside cli.py: an agent's MCP server must
not pay for a UI it never shows (the harlequin habit: prove it in a fresh interpreter)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import mesh_core

UI_PACKAGES = ("textual", "rich")
# cli.py prints tables for people and may use rich; nothing else may. `python -m
# mesh_core` is that CLI (importing __main__ runs it).
ALLOWED_UI = {"mesh_core.cli", "mesh_core.__main__"}

CHECK = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ("textual", "rich"))))
"""


def _core_modules() -> list[str]:
    found = ["mesh_core"] + [
        info.name for info in pkgutil.walk_packages(mesh_core.__path__, "mesh_core.")
    ]
    return [name for name in found if name not in ALLOWED_UI]


def test_the_list_of_core_modules_is_complete() -> None:
    modules = _core_modules()
    for expected in ("mesh_core.mesh", "mesh_core.db", "mesh_core.participant",
                     "mesh_core.identity", "mesh_core.text"):
        assert expected in modules


@pytest.mark.parametrize("module", _core_modules())
def test_core_module_imports_no_ui_library(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, module],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{module} pulls in {loaded}"
