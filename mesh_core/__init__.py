"""agent-mesh core: a message bus for AI coding agents over one shared SQLite file.

Never imports textual (a test proves it): an agent's MCP server must not pay for a UI.
"""

from .clock import Clock, FixedClock, SystemClock, iso, parse_ts
from .config import DEFAULT_CONFIG, MeshConfig, resolve_db_path
from .errors import MeshError
from .mesh import BROADCAST, Mesh, SessionClaim
from .models import Agent, CleanupReport, Message, Priority, Status
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
    "Priority",
    "SessionClaim",
    "Status",
    "SystemClock",
    "iso",
    "parse_ts",
    "resolve_db_path",
]
__version__ = "0.1.0"
