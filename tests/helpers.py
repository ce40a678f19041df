"""Small helpers several test files share: waiting for a condition another process makes
true, running the real `mesh` command as a process, and the environment it runs in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 60.0  # generous: a loaded 2-core machine must not make these flake


def wait_until(
    condition: Callable[[], T | None], what: str = "", timeout: float = TIMEOUT, step: float = 0.05
) -> T:
    """Poll `condition` until it returns something truthy and return that; fail with
    `what` (or the condition's docstring) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition.__doc__ or condition}")
        time.sleep(step)


# What a client writes first on an MCP server's stdin (tests that speak the raw wire).
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


def identity_free_env() -> dict[str, str]:
    """This process's environment without AGENT_MESH_NAME and AGENT_MESH_DB, so a `mesh`
    process started with it names itself after its cwd and uses the `--db` it is given,
    as a host-started one does (a developer's own settings must not leak into a test)."""
    return {k: v for k, v in os.environ.items() if k not in ("AGENT_MESH_NAME", "AGENT_MESH_DB")}


def git_repo(folder: Path) -> Path:
    """`folder`, created as a git repository (a session there is named after it)."""
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def mesh_argv(db: Path, *args: str) -> list[str]:
    """The `mesh` command on `db`, run by this interpreter (the installed package)."""
    return [sys.executable, "-m", "mesh_cli", "--db", str(db), *args]


def run_mesh(
    db: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`mesh ARGS` as a process into pipes; `env` is added to this process's environment."""
    return subprocess.run(
        mesh_argv(db, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
