"""The statements of a send (docs/contract.md §4), as constant text: sqlite3 prepares each
once per connection (its statement cache is keyed by the text) and reuses it for every
send. Values are bound by position (`?N`): a tuple binds without a dict look-up per name.

A send to an active workspace is BEGIN IMMEDIATE, RESOLVE, one of RULES, the INSERT and
COMMIT. None of them builds a temporary table (no `IN (…)` list, no ORDER BY that an
index does not give), and each returns as few values as it can: a value read costs more
than the seek that found it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any


def numbered(sql: str, names: Sequence[str]) -> str:
    """`sql` with each `:name` written as `?N`, N its place in `names` (from 1)."""

    def number(found: re.Match[str]) -> str:
        return f"?{names.index(found.group(1)) + 1}"

    return re.sub(r"(?<![\w'])\:([a-z_]+)\b", number, sql)


# The sender, the target and the target workspace's sessions (any case); each row also
# carries the mesh's rate limit from mesh_meta (read in this transaction: always what
# the file holds now, whoever changed it last).
RESOLVE = numbered(
    "SELECT session_id, agent_name, status, metadata, last_heartbeat, registered_at, "
    "agent_name = :target COLLATE NOCASE AS by_name, "
    "(SELECT value FROM mesh_meta WHERE key = 'rate_limit') AS mesh_rate_limit, "
    "(SELECT value FROM mesh_meta WHERE key = 'rate_window') AS mesh_rate_window "
    # three seeks (MULTI-INDEX OR); `session_id IN (…)` would build a temporary index
    "FROM agent_sessions WHERE session_id = :sender OR session_id = :target "
    "OR agent_name = :target COLLATE NOCASE",
    ("sender", "target"),
)

# RESOLVE's columns by position (a Row looks a name up column by column).
ID, STATUS, BY_NAME, RATE_LIMIT, RATE_WINDOW = 0, 2, 6, 7, 8

INSERT = (
    "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
    "original_message_id, priority, created_at, read, read_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?)"
)

# The values RULES and RECENT are bound to, in this order.
RULES_PARAMS = ("s_id", "r_id", "s_name", "r_name", "since", "window", "limit", "depth")
# What a row of RULES is: the session pair's newest message each way since the thread
# window's start, as (kind, message_id, original_message_id, created_at as text); and
# (COUNTS, the recipient's unread messages, the workspace pair's sends in the rate
# window, NULL), each count capped (at the flood threshold, at the limit).
SENT, RECEIVED, COUNTS = 1, 0, 2


def _workspace(party: str, named: bool) -> str:
    """SQL for "session `party` is of this party's workspace": a session without a
    name is a workspace of its own."""
    if named:  # the index (any case), then the exact name
        return f"{party}.agent_name = :{party}_name COLLATE NOCASE AND {party}.agent_name = :{party}_name"
    return f"{party}.session_id = :{party}_id"


# Another client's created_at may be a BLOB, or text that is not UTF-8: the rules compare
# it as text, against bounds in our ASCII form. SQLite compares the bytes; Python, the
# decoded text with bad bytes shown as `\xff`. Both orders agree against such a bound
# (UTF-8 keeps code-point order, and a bad byte or its `\` sorts above every character
# of our form), so SQL can count and pick what the Python rules would.
_AS_TEXT = "CAST({} AS TEXT)"


def _rules(sender_named: bool, recipient_named: bool) -> str:
    """The one read of the rules, for a sender and a recipient with or without a
    workspace name (four constant texts).

    Auto-thread: idx_messages_pair, the newest message each way. Queue depth:
    idx_messages_unread. Rate limit: the workspace pair's sends in the window, counted.
    When the sender's workspace is the sender alone, they are read from idx_messages_pair
    for each session of the recipient's workspace (covering: a few seeks however busy
    the recipient is); else from idx_messages_recipient for each session of the
    recipient's workspace, each message checked for its sender's workspace (a
    workspace's old sessions cost one seek each, not one per pair of sessions). A
    one-row gate, read once, picks the branch before either reads a message."""
    recipients = _workspace("r", recipient_named)
    in_window = f"{_AS_TEXT.format('m.created_at')} > :window"
    by_pair = (
        "SELECT count(*) FROM (SELECT 1 FROM agent_sessions r "
        "CROSS JOIN agent_messages m INDEXED BY idx_messages_pair "
        "ON m.sender_session_id = :s_id AND m.recipient_session_id = r.session_id "
        f"AND m.created_at > :window WHERE {recipients} AND {in_window} LIMIT :limit)"
    )
    if sender_named:
        alone = (
            "(SELECT count(*) FROM (SELECT 1 FROM agent_sessions s WHERE "
            f"{_workspace('s', True)} LIMIT 2)) = 1"
        )
        by_recipient = (
            "SELECT count(*) FROM (SELECT 1 FROM agent_sessions r "
            "CROSS JOIN agent_messages m INDEXED BY idx_messages_recipient "
            "ON m.recipient_session_id = r.session_id AND m.created_at > :window "
            "JOIN agent_sessions s ON s.session_id = m.sender_session_id "
            f"WHERE {recipients} AND s.agent_name = :s_name AND {in_window} LIMIT :limit)"
        )
        # CASE reads the gate once and runs only the branch it picks
        recent = f"CASE WHEN {alone} THEN ({by_pair}) ELSE ({by_recipient}) END"
    else:
        recent = f"({by_pair})"
    at = _AS_TEXT.format("created_at")

    def newest(kind: int, sender: str, recipient: str) -> str:
        # the index's newest (in SQLite's order: a BLOB first), if in the thread window
        return (
            f"SELECT {kind} AS kind, message_id, original_message_id, {at} FROM "
            "(SELECT message_id, original_message_id, created_at FROM agent_messages "
            f"WHERE sender_session_id = {sender} AND recipient_session_id = {recipient} "
            f"AND created_at >= :since ORDER BY created_at DESC LIMIT 1) WHERE {at} >= :since"
        )

    return numbered(
        f"{newest(SENT, ':s_id', ':r_id')} UNION ALL {newest(RECEIVED, ':r_id', ':s_id')} "
        # the queue depth: is there a :depth-th unread message (OFFSET steps through the
        # index without feeding each entry to a count)
        f"UNION ALL SELECT {COUNTS}, CASE WHEN :depth <= 0 OR EXISTS (SELECT 1 FROM "
        "agent_messages WHERE recipient_session_id = :r_id AND read = 0 "
        f"LIMIT 1 OFFSET :depth - 1) THEN :depth ELSE 0 END, {recent}, NULL",
        RULES_PARAMS,
    )


def _recent(sender_named: bool, recipient_named: bool) -> str:
    """The workspace pair's sends in the window as text, newest first, at most :limit
    (for a refusal's "try again in"): from each session of the recipient's workspace,
    that session's messages of the window (idx_messages_recipient), each checked for
    its sender's workspace."""
    at = _AS_TEXT.format("m.created_at")
    return numbered(
        f"SELECT {at} FROM agent_sessions r "
        "JOIN agent_messages m INDEXED BY idx_messages_recipient "
        "  ON m.recipient_session_id = r.session_id AND m.created_at > :window "
        "JOIN agent_sessions s ON s.session_id = m.sender_session_id "
        f"WHERE {_workspace('r', recipient_named)} AND "
        + ("s.agent_name = :s_name" if sender_named else "s.session_id = :s_id")
        + f" AND {at} > :window ORDER BY {at} DESC LIMIT :limit",
        RULES_PARAMS[:7],
    )


_KINDS = [(s, r) for s in (True, False) for r in (True, False)]
# By (the sender has a workspace name, the recipient has one).
RULES = {kind: _rules(*kind) for kind in _KINDS}
RECENT = {kind: _recent(*kind) for kind in _KINDS}


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
    """All rows of `sql`, text decoded by sqlite3's own decoder, which is C all the way
    (the connection's forgiving one is a Python call per value). Text that is not UTF-8
    (another client's) makes it read again with the forgiving one."""
    forgiving = conn.text_factory
    conn.text_factory = str
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    finally:
        conn.text_factory = forgiving
    return conn.execute(sql, params).fetchall()
