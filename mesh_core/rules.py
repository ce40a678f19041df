"""Every rule of the mesh, each written once: validation, priority ranking (in Python and
in SQL), the rate-limit and flood predicates, the roster order, wait time-outs.

The CLI, the MCP server, the hooks and the TUI all reach these through `Mesh` or call them
directly, so a cap or an order cannot drift between front-ends. See docs/contract.md §4.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import parse_ts_or_none, span
from .config import MeshConfig
from .errors import (
    ContentTooLarge,
    EmptyContent,
    InvalidArgument,
    InvalidContent,
    InvalidMessageId,
    InvalidName,
    InvalidPriority,
    RateLimited,
)
from .models import Agent, Status
from .text import name_problem

BROADCAST = "*"
MAX_NAME_CHARS = 128
STATUS_FILTERS = ("active", "stale", "other", "stopped", "all", "online")
KINDS = ("agent", "human", "cli")
# The `client` each of our front-ends records in a session's metadata.
CLIENT_MCP = "mesh-mcp"
CLIENT_TUI = "mesh-tui"
CLIENT_CLI = "mesh-cli"
CLIENT_HOOK = "mesh-hook"
# The client a session records when its registrar names none, by kind.
DEFAULT_CLIENTS = {"agent": CLIENT_MCP, "human": CLIENT_TUI, "cli": CLIENT_CLI}
MAX_MESSAGE_ID = 2**63 - 1
# The longest a caller may block waiting for a reply (MCP `wait_for_reply`).
MAX_WAIT_SECONDS = 3600.0

# -- priority ---------------------------------------------------------------------------

PRIORITY_ORDER = ("urgent", "high", "normal", "low")
_NORMAL_RANK = PRIORITY_ORDER.index("normal")
# The same ranking for SQL: a priority another client wrote that we do not know ranks as
# normal, as priority_rank does.
PRIORITY_RANK_SQL = (
    "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'low' THEN 3 ELSE 2 END"
)
# A row's thread: its parent when that is a positive integer, else itself (another
# client writes '' or text for "no parent"); the SQL twin of rows.row_id.
THREAD_ID_SQL = (
    "CASE WHEN typeof(original_message_id) = 'integer' AND original_message_id > 0 "
    "THEN original_message_id ELSE message_id END"
)


def priority_rank(priority: object) -> int:
    """0 for urgent … 3 for low: the inbox's delivery order."""
    return PRIORITY_ORDER.index(priority) if priority in PRIORITY_ORDER else _NORMAL_RANK


def validate_priority(priority: object) -> str:
    if isinstance(priority, str) and priority in PRIORITY_ORDER:  # as written: the usual
        return priority
    if isinstance(priority, str) and priority.strip().lower() in PRIORITY_ORDER:
        return priority.strip().lower()
    raise InvalidPriority(priority)


# -- content, names, ids, time-outs ------------------------------------------------------


def validate_content(content: object, limit: int) -> str:
    """Not empty after trimming, at most `limit` bytes of UTF-8, no NUL."""
    if not isinstance(content, str):
        raise InvalidContent(f"content must be text, not {type(content).__name__}")
    if not content or content.isspace():  # what strip() would leave empty, uncopied
        raise EmptyContent()
    if "\x00" in content:
        raise InvalidContent("it contains a NUL character; remove it and send again")
    try:
        size = len(content) if content.isascii() else len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidContent(
            "it is not valid UTF-8 text (lone surrogate); re-encode it as UTF-8"
        ) from exc
    if size > limit:
        raise ContentTooLarge(size, limit)
    return content


def validate_name(name: object) -> str:
    """A workspace name: one line of plain, visible text, not `*`, at most 128 characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(name, "a workspace name cannot be empty")
    cleaned = name.strip()
    if cleaned == BROADCAST:
        raise InvalidName(name, "`*` is reserved for broadcast")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidName(
            cleaned[:40] + "…", f"it is {len(cleaned)} characters; the limit is {MAX_NAME_CHARS}"
        )
    problem = name_problem(cleaned)
    if problem is not None:
        raise InvalidName(cleaned, f"{problem}; use plain text")
    return cleaned


def validate_message_id(message_id: object) -> int:
    """A positive 64-bit id, as an int or as text (`42`, `#42`); never a bool."""
    if isinstance(message_id, bool):
        raise InvalidMessageId(message_id)
    digits = message_id.strip().lstrip("#") if isinstance(message_id, str) else ""
    if digits.isascii() and digits.isdigit():  # not "²" or "٣": str.isdigit takes those
        message_id = int(digits)
    if not isinstance(message_id, int) or message_id <= 0 or message_id > MAX_MESSAGE_ID:
        raise InvalidMessageId(message_id)
    return message_id


def validate_timeout(timeout: object, limit: float = math.inf) -> float:
    """Seconds to wait: zero or more, finite, at most `limit`."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 <= timeout < math.inf
    ):
        raise InvalidArgument(f"timeout {timeout!r} must be zero or more seconds")
    if timeout > limit:
        raise InvalidArgument(f"timeout must be between 0 and {limit:g} seconds")
    return float(timeout)


def validate_kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return str(kind)


def validate_status_filter(status: object) -> str:
    if status not in STATUS_FILTERS:
        raise InvalidArgument(
            f"unknown status {status!r}: use one of active, stale, other, stopped, all"
        )
    return str(status)


# -- status, flood, rate limit ----------------------------------------------------------


def reported_status(
    stored: object, last_heartbeat: str | None, now: datetime, config: MeshConfig
) -> Status:
    """What the roster says of a session: stopped as stored, else active or stale by its
    last heartbeat (a heartbeat that does not parse is stale). Only the text 'active' and
    'stopped' are ours: a BLOB spelling them is another client's value like any other."""
    if stored == "stopped":
        return Status.STOPPED
    return status_since(stored, parse_ts_or_none(last_heartbeat), now, config)


def status_since(
    stored: object, seen: datetime | None, now: datetime, config: MeshConfig
) -> Status:
    """`reported_status` with the heartbeat already parsed (None: it does not parse)."""
    if stored == "stopped":
        return Status.STOPPED
    age = (now - seen).total_seconds() if seen is not None else None
    if stored != "active":
        # Another client's own status ('idle', NULL, a number): never active (so never
        # routed mail), never stale; stopped once its heartbeat is as old as a silent
        # session's, as the clean-up will then store it.
        return Status.STOPPED if age is None or age > config.stop_after else Status.OTHER
    if age is None:
        return Status.STALE
    return Status.ACTIVE if age <= config.stale_after else Status.STALE


def is_flooded(unread: int, config: MeshConfig) -> bool:
    """More unread messages than the flood threshold: the recipient may be stuck."""
    return unread > config.flood_threshold


@dataclass(frozen=True)
class RateLimit:
    """The mesh's rate limit: at most `limit` messages from one workspace to another in
    any `window` seconds. One value for everyone on the file (kept in its mesh_meta
    table), never a sending process's own configuration."""

    limit: int = 10
    window: float = 60.0

    @classmethod
    def parse(cls, limit: object, window: object) -> RateLimit:
        """From mesh_meta's text; a missing or odd value (another client's) is the
        contract's default, so every reader of the file gets the same numbers."""
        try:
            return _parse_rate_limit(limit, window)
        except TypeError:  # an unhashable value (a caller's, never the file's)
            return cls._parse(limit, window)

    @classmethod
    def _parse(cls, limit: object, window: object) -> RateLimit:
        default = cls()
        try:
            found_limit = int(str(limit))
        except ValueError:
            found_limit = default.limit
        try:
            found_window = float(str(window))
        except ValueError:
            found_window = default.window
        if not 0 < found_limit <= 2**62:
            found_limit = default.limit
        if not 0 < found_window <= 10**9:  # NaN fails this too
            found_window = default.window
        return cls(found_limit, found_window)

    def retry(self, recent: Sequence[str], now: datetime) -> float | None:
        """Seconds until one more message may go, given the workspace pair's sends in the
        window (newest first); None when it may go now."""
        if len(recent) < self.limit:
            return None
        oldest = parse_ts_or_none(recent[self.limit - 1]) or now
        return (oldest - now).total_seconds() + self.window

    def check(self, recent: Sequence[str], now: datetime, recipient_name: str) -> None:
        retry = self.retry(recent, now)
        if retry is not None:
            raise RateLimited(recipient_name, self.limit, self.window, retry)

    def since(self, now: datetime) -> datetime:
        """Where the window begins."""
        return now - span(self.window)


@functools.lru_cache(maxsize=16, typed=True)  # typed: 1 and 1.0 parse differently
def _parse_rate_limit(limit: object, window: object) -> RateLimit:
    """Every send parses the file's two values, which rarely change: parsed once each."""
    return RateLimit._parse(limit, window)


# Messages sent in the window, per (sender session, recipient session), from message id
# :first on, for a monitor; it adds them up per workspace pair (see views.roster).
RATE_PAIR_COUNTS_SQL = (
    # NOT INDEXED keeps the rowid range seek (see views.Activity.update)
    "SELECT sender_session_id, recipient_session_id, count(*) FROM agent_messages NOT INDEXED "
    "WHERE message_id >= :first AND created_at > :since GROUP BY 1, 2"
)


# -- order --------------------------------------------------------------------------------

_STATUS_ORDER = {Status.ACTIVE: 0, Status.STALE: 1, Status.OTHER: 1, Status.STOPPED: 2}


def roster_key(agent: Agent, needs_attention: bool = False) -> tuple[Any, ...]:
    """The one roster order: those needing attention first (by name), then active, stale,
    stopped, each by name (case-insensitive), then session id."""
    return (
        0 if needs_attention else 1,
        0 if needs_attention else _STATUS_ORDER[agent.status],
        agent.agent_name.lower(),
        agent.session_id,
    )
