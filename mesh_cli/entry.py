"""The `mesh` command's entry point (the installed script, `python -m mesh_cli`).

Loading the command line builds only objects that live as long as the process:
modules, classes, functions, dataclasses' generated methods. Python's cyclic garbage
collector still walks them every few hundred allocations, and a collection during a
short command's start-up is pure loss. So the collector is paused while the command
line loads, and everything loaded is then frozen (`gc.freeze`: later collections skip
it) before the collector resumes for the command itself — `mesh mcp` and
`inbox --follow` run for hours and need it.
"""

from __future__ import annotations

import gc


def main() -> int:
    """Load `mesh_cli.cli` with the collector paused, then run one `mesh` command."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .cli import main as run
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return run()
