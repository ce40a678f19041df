"""agent-mesh core: a message bus for AI coding agents over one shared SQLite file.

Imports no textual, rich or MCP SDK and prints nothing (import-linter and a test prove
it): an agent's MCP server must not pay for a UI, and every front-end builds on this.

The names below load on first use (PEP 562), so `from mesh_core.clock import iso` or a
short CLI command does not pay for the participant loop, logging or the file watch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import Clock, FixedClock, SystemClock, iso, parse_ts
    from .config import DEFAULT_CONFIG, MeshConfig, resolve_db_path
    from .errors import MeshError
    from .mesh import BROADCAST, Mesh, SessionClaim
    from .models import Agent, CleanupReport, Message, Status
    from .participant import Participant

_WHERE = {
    "Clock": "clock",
    "FixedClock": "clock",
    "SystemClock": "clock",
    "iso": "clock",
    "parse_ts": "clock",
    "DEFAULT_CONFIG": "config",
    "MeshConfig": "config",
    "resolve_db_path": "config",
    "MeshError": "errors",
    "BROADCAST": "mesh",
    "Mesh": "mesh",
    "SessionClaim": "mesh",
    "Agent": "models",
    "CleanupReport": "models",
    "Message": "models",
    "Status": "models",
    "Participant": "participant",
}

__all__ = [
    "BROADCAST",
    "DEFAULT_CONFIG",
    "Agent",
    "CleanupReport",
    "Clock",
    "FixedClock",
    "Mesh",
    "MeshConfig",
    "MeshError",
    "Message",
    "Participant",
    "SessionClaim",
    "Status",
    "SystemClock",
    "iso",
    "parse_ts",
    "resolve_db_path",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
