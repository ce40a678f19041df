"""The layers hold in the static import graph: `lint-imports` keeps every contract in
pyproject.toml's [tool.importlinter] (the TUI and the CLI over the agents' hosts over the
core; no UI or MCP SDK in the core, no UI in the agents' hosts). tests/test_boundary.py
checks the same at run time, module by module in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "0 broken" in report, report
