"""agent-mesh core: a message bus for AI coding agents over one shared SQLite file.

Imports no textual, rich or MCP SDK and prints nothing (import-linter and a test prove
it): an agent's MCP server must not pay for a UI, and every front-end builds on this.
"""

from .clock import Clock, FixedClock, SystemClock, iso, parse_ts
from .config import DEFAULT_CONFIG, MeshConfig, resolve_db_path
from .errors import MeshError
from .mesh import BROADCAST, Mesh, SessionClaim
from .models import Agent, CleanupReport, Message, Status
from .participant import Participant

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
