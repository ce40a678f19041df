"""Bad input at every door: each gets its rule's clear refusal and changes nothing.

The Python API is checked call by call with a dump of the whole database before and
after; the `mesh` command through real subprocesses (exit code 1 for a rule, 2 for
usage, one line on stderr saying why). The MCP server's and the TUI composer's doors
are tested by their own suites (tests/test_mcp.py, the TUI tests).
"""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mesh_core import Mesh, MeshError
from mesh_core.errors import (
    ContentTooLarge,
    EmptyContent,
    InvalidArgument,
    InvalidContent,
    InvalidMessageId,
    InvalidName,
    InvalidPriority,
    MessageNotFound,
    SessionNotFound,
    UnknownRecipient,
)

LIMIT = 10_240
SQLISH = [
    "'; DROP TABLE agent_messages; --",
    "Robert'); DELETE FROM agent_sessions WHERE ('1'='1",
    '" OR 1=1 --',
    "%_\\ LIKE '%' ESCAPE '\\'",
]


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def messages(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM agent_messages ORDER BY message_id").fetchall()


@pytest.fixture
def pair(mesh: Mesh) -> tuple[str, str, int]:
    """alice and bob, one message between them: (alice id, bob id, that message's id)."""
    alice = mesh.register("alice").session_id
    bob = mesh.register("bob").session_id
    first = mesh.send(alice, "bob", "hello")
    return alice, bob, first.message_id


# -- the Python API -----------------------------------------------------------------

TOO_BIG = [
    "x" * (LIMIT + 1),  # 10,241 bytes
    "é" * (LIMIT // 2) + "a",  # two-byte characters, one byte over
    "a" * (LIMIT - 1) + "é",  # the last character straddles the limit
    "€" * (LIMIT // 3 + 1),  # three-byte characters: 10,242 bytes in 3,414 characters
    "😀" * (LIMIT // 4) + "a",  # four-byte characters
]
AT_THE_LIMIT = [
    "x" * LIMIT,
    "é" * (LIMIT // 2),
    "a" * (LIMIT - 2) + "é",
    "€" * 3413 + "a",
    "😀" * (LIMIT // 4),
]
BAD_IDS = [
    -1,
    0,
    -(2**63),
    2**63,
    10**30,
    1.0,
    1.5,
    math.nan,
    math.inf,
    "1.5",
    "abc",
    "",
    " ",
    "-3",
    "²",
    "٣",
    "0x1",
    None,
    True,
    False,
    [1],
    {"id": 1},
    b"1",
]


def refused(mesh: Mesh, call: Callable[[], object], error: type[MeshError]) -> MeshError:
    before = dump(mesh.path)
    with pytest.raises(error) as info:
        call()
    assert dump(mesh.path) == before, "a refused call changed the database"
    assert str(info.value).strip(), "the refusal has no message"
    return info.value


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", EmptyContent),
        ("   \n\t  ", EmptyContent),
        ("\u3000\u2003", EmptyContent),
        ("a\x00b", InvalidContent),
        ("\x00", InvalidContent),
        ("ok\udcff", InvalidContent),
        (None, InvalidContent),
        (42, InvalidContent),
        (b"bytes", InvalidContent),
    ]
    + [(text, ContentTooLarge) for text in TOO_BIG],
    ids=lambda value: repr(value)[:20],
)
def test_bad_content_is_refused_by_send_reply_and_broadcast(
    mesh: Mesh, pair: tuple[str, str, int], content: Any, error: type[MeshError]
) -> None:
    alice, bob, first = pair
    refused(mesh, lambda: mesh.send(alice, "bob", content), error)
    refused(mesh, lambda: mesh.reply(bob, first, content), error)
    refused(mesh, lambda: mesh.send(alice, "*", content), error)


def test_too_large_names_the_size_and_the_limit(mesh: Mesh, pair: tuple[str, str, int]) -> None:
    error = refused(mesh, lambda: mesh.send(pair[0], "bob", "€" * 3414), ContentTooLarge)
    assert "10,242 bytes" in str(error) and "10,240" in str(error)


@pytest.mark.parametrize("content", AT_THE_LIMIT, ids=lambda text: repr(text[-3:]))
def test_content_at_the_limit_round_trips_exactly(
    mesh: Mesh, pair: tuple[str, str, int], content: str
) -> None:
    alice, bob, _ = pair
    assert len(content.encode()) <= LIMIT
    sent = mesh.send(alice, "bob", content)
    assert [m.content for m in mesh.inbox(bob)][-1] == content == mesh.get(sent.message_id).content


@pytest.mark.parametrize("text", SQLISH)
def test_sql_looking_text_is_stored_literally(
    mesh: Mesh, pair: tuple[str, str, int], text: str
) -> None:
    alice, bob, _ = pair
    sent = mesh.send(alice, "bob", text)
    assert mesh.inbox(bob)[-1].content == text
    assert mesh.get(sent.message_id).content == text
    with pytest.raises(UnknownRecipient):  # as a name it finds nobody, and drops nothing
        mesh.send(alice, text, "x")
    assert len(mesh.agents("all")) == 2 and len(messages(mesh.path)) == 2


@pytest.mark.parametrize("priority", ["URGENTE", "", "  ", "highest", "0", None, 1, "urgent\x00"])
def test_unknown_priority_is_refused(mesh: Mesh, pair: tuple[str, str, int], priority: Any) -> None:
    alice, bob, first = pair
    error = refused(mesh, lambda: mesh.send(alice, "bob", "x", priority=priority), InvalidPriority)
    assert "low, normal, high, urgent" in str(error)
    refused(mesh, lambda: mesh.reply(bob, first, "x", priority=priority), InvalidPriority)


@pytest.mark.parametrize("message_id", BAD_IDS, ids=repr)
def test_malformed_message_ids_are_refused(
    mesh: Mesh, pair: tuple[str, str, int], message_id: Any
) -> None:
    _, bob, _ = pair
    for call in (
        lambda: mesh.get(message_id),
        lambda: mesh.thread(message_id),
        lambda: mesh.reply(bob, message_id, "x"),
    ):
        error = refused(mesh, call, InvalidMessageId)
        assert "positive integer" in str(error)


@pytest.mark.parametrize("message_id", [2, 999_999, 2**63 - 1, "#424242", " 7 "])
def test_well_formed_but_missing_ids_are_not_found(
    mesh: Mesh, pair: tuple[str, str, int], message_id: Any
) -> None:
    refused(mesh, lambda: mesh.reply(pair[1], message_id, "x"), MessageNotFound)
    refused(mesh, lambda: mesh.get(message_id), MessageNotFound)


@pytest.mark.parametrize(
    "target", ["", "   ", "nobody", "bob\x00", "b\udcffob", "x" * 10_000, None, 7, "**"]
)
def test_unknown_or_malformed_recipients_are_refused(
    mesh: Mesh, pair: tuple[str, str, int], target: Any
) -> None:
    error = refused(mesh, lambda: mesh.send(pair[0], target, "x"), MeshError)
    assert isinstance(error, UnknownRecipient | InvalidArgument)


def test_unknown_recipient_lists_the_workspaces_that_exist(
    mesh: Mesh, pair: tuple[str, str, int]
) -> None:
    for target in ("", "nobody"):
        error = refused(mesh, partial(mesh.send, pair[0], target, "x"), UnknownRecipient)
        assert "alice" in str(error) and "bob" in str(error)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("*", "reserved"),
        ("x" * 129, "limit is 128"),
        ("a\x00b", "control"),
        ("tab\there", "control"),
        ("two\nlines", "control"),
        ("a\x1b[31mb", "control"),
        ("a\u202eb", "bidi"),
        ("ad\u200bmin", "invisible"),
        ("n\udcffame", "control"),
        (None, "empty"),
        (5, "text|empty"),
        (["x"], "text|empty"),
    ],
)
def test_bad_workspace_names_are_refused(mesh: Mesh, name: Any, why: str) -> None:
    """`register` infers a name it is not given (None, blank): only `session_for`, which
    must be told whom to act as, refuses those."""
    before = dump(mesh.path)
    calls: list[Callable[[], object]] = [lambda: mesh.session_for(name)]
    if name is not None and not (isinstance(name, str) and not name.strip()):
        calls.append(lambda: mesh.register(name))
    for call in calls:
        with pytest.raises(InvalidName, match=why):
            call()
    assert dump(mesh.path) == before


def test_a_very_long_name_fits_exactly_at_the_limit(mesh: Mesh) -> None:
    name = "w" * 128
    agent = mesh.register(name)
    assert agent.agent_name == name and mesh.session_for(name).agent == agent


def test_names_that_differ_only_in_case(mesh: Mesh) -> None:
    """Exact spelling wins; any other spelling reaches the one workspace it matches."""
    alice = mesh.register("alice").session_id
    lower = mesh.register("bob").session_id
    assert mesh.send(alice, "BOB", "to bob").recipient_session_id == lower
    upper = mesh.register("BOB").session_id
    assert mesh.send(alice, "BOB", "to BOB").recipient_session_id == upper
    assert mesh.send(alice, "bob", "to bob").recipient_session_id == lower
    assert [m.content for m in mesh.inbox(upper)] == ["to BOB"]


@pytest.mark.parametrize("session_id", ["nope", "", None, 7, "b\udcffob", ["x"]])
def test_unregistered_or_malformed_senders_are_refused(
    mesh: Mesh, pair: tuple[str, str, int], session_id: Any
) -> None:
    error = refused(mesh, lambda: mesh.send(session_id, "bob", "x"), MeshError)
    assert isinstance(error, SessionNotFound | InvalidArgument)
    refused(mesh, lambda: mesh.heartbeat(session_id), MeshError)


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan, math.inf, "5", None])
def test_wait_for_reply_refuses_a_timeout_that_is_not_seconds(
    mesh: Mesh, pair: tuple[str, str, int], timeout: Any
) -> None:
    """NaN passed `timeout < 0` and then waited forever."""
    refused(mesh, lambda: mesh.wait_for_reply(pair[0], pair[2], timeout), InvalidArgument)


@pytest.mark.parametrize("status", ["nope", "", "ACTIVE ", None, 1])
def test_unknown_status_filter_is_refused(mesh: Mesh, status: Any) -> None:
    refused(mesh, lambda: mesh.agents(status), InvalidArgument)


# -- the command line -----------------------------------------------------------------


def mesh_cli(
    db: Path, *args: str | bytes, stdin: bytes = b"", name: str = "alice"
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, AGENT_MESH_NAME=name, NO_COLOR="1")
    env.pop("AGENT_MESH_DB", None)
    argv: list[str | bytes] = [sys.executable, "-m", "mesh_core", *args, "--db", str(db)]
    return subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=60, check=False)


@pytest.fixture
def cli_db(tmp_path: Path) -> Path:
    db = tmp_path / "cli.db"
    with Mesh(db) as mesh:
        alice = mesh.register("alice", kind="cli").session_id
        mesh.register("bob")
        mesh.send(alice, "bob", "hello")
    return db


CLI_REFUSALS: list[tuple[tuple[str | bytes, ...], bytes, int, str]] = [
    (("send", "bob", ""), b"", 1, "empty"),
    (("send", "bob", "  \t "), b"", 1, "empty"),
    (("send", "bob", "x" * (LIMIT + 1)), b"", 1, "10,241 bytes"),
    (("send", "bob", "-"), b"x" * (LIMIT + 1), 1, "10,241 bytes"),
    (("send", "bob", "-"), "é".encode() * (LIMIT // 2) + b"a", 1, "10,241 bytes"),
    (("send", "bob", "-"), "€".encode() * 3414, 1, "10,242 bytes"),
    (("send", "bob", "-"), b"a\x00b", 1, "NUL"),
    (("send", "bob", "-"), b"ab\xffcd", 1, "UTF-8"),
    (("send", "bob", "-"), b"\xc3", 1, "UTF-8"),  # a character cut in half
    (("send", "bob", "-"), b"", 1, "empty"),
    (("send", "bob", "hi", "--priority", "URGENTE"), b"", 1, "low, normal, high, urgent"),
    (("send", "bob", "hi", "--priority", ""), b"", 1, "low, normal, high, urgent"),
    (("send", "nobody", "hi"), b"", 1, "unknown recipient"),
    (("send", "bob' OR '1'='1", "hi"), b"", 1, "unknown recipient"),
    (("send", b"b\xffob", "hi"), b"", 1, "UTF-8"),
    (("send", "bob", "hi", "--from", "x" * 200), b"", 1, "limit is 128"),
    (("send", "bob", "hi", "--from", b"al\xffice"), b"", 1, "invalid workspace name"),
    (("send", "bob", "hi", "--from", "al\u202eice"), b"", 1, "invalid workspace name"),
    (("send", "alice", "hi"), b"", 1, "yourself"),
    (("send", "bob", "hi", "--wait", "nan"), b"", 2, "seconds"),
    (("send", "bob", "hi", "--wait", "-1"), b"", 2, "seconds"),
    (("send", "bob"), b"", 2, "required"),
    (("show", "-1"), b"", 1, "positive integer"),
    (("show", "0"), b"", 1, "positive integer"),
    (("show", "99999999999999999999999"), b"", 1, "positive integer"),
    (("show", "1.5"), b"", 1, "positive integer"),
    (("show", "abc"), b"", 1, "positive integer"),
    (("show", "²"), b"", 1, "positive integer"),
    (("show", "424242"), b"", 1, "not found"),
    (("reply", "-5", "hi"), b"", 1, "positive integer"),
    (("reply", "424242", "hi"), b"", 1, "not found"),
    (("reply", "1", ""), b"", 1, "empty"),
    (("agents", "--status", "nope"), b"", 2, "invalid choice"),
    (("frobnicate",), b"", 2, "invalid choice"),
]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    CLI_REFUSALS,
    ids=[f"{' '.join(map(repr, a))[:40]}|{s[:8]!r}" for a, s, _, _ in CLI_REFUSALS],
)
def test_cli_refuses_bad_input_and_changes_no_message(
    cli_db: Path, args: tuple[str | bytes, ...], stdin: bytes, code: int, says: str
) -> None:
    before = messages(cli_db)
    result = mesh_cli(cli_db, *args, stdin=stdin)
    err = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode == code, err
    assert says in err, err
    assert "Traceback" not in err
    assert result.stdout == b""
    assert messages(cli_db) == before


def test_cli_sends_multibyte_text_at_the_limit_exactly(cli_db: Path) -> None:
    content = "é" * (LIMIT // 2)
    result = mesh_cli(cli_db, "send", "bob", "-", "--json", stdin=content.encode() + b"\n")
    assert result.returncode == 0, result.stderr
    assert messages(cli_db)[-1][3] == content


def test_cli_stores_sql_looking_text_literally(cli_db: Path) -> None:
    for text in SQLISH:
        result = mesh_cli(cli_db, "send", "bob", text)
        assert result.returncode == 0, result.stderr
        assert messages(cli_db)[-1][3] == text
    with sqlite3.connect(cli_db) as conn:
        assert conn.execute("SELECT count(*) FROM agent_sessions").fetchone()[0] == 2


# -- the MCP server ---------------------------------------------------------------------

MCP_REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("send_message", {"content": "", "workspace": "bob"}),
    ("send_message", {"content": "a\x00b", "workspace": "bob"}),
    ("send_message", {"content": "é" * (LIMIT // 2) + "a", "workspace": "bob"}),
    ("send_message", {"content": "x", "workspace": "w" * 10_000}),
    ("send_message", {"content": "x", "workspace": "bob' OR '1'='1"}),
    ("send_message", {"content": "x", "workspace": "bob", "priority": "URGENTE"}),
    ("send_message", {"content": "x", "workspace": "bob", "priority": None}),
    ("send_message", {"content": 5, "workspace": "bob"}),
    ("send_message", {"content": None, "workspace": "bob"}),
    ("send_message", {"workspace": "bob"}),
    ("reply_to_message", {"message_id": -1, "content": "x"}),
    ("reply_to_message", {"message_id": 0, "content": "x"}),
    ("reply_to_message", {"message_id": 2**70, "content": "x"}),
    ("reply_to_message", {"message_id": 1.5, "content": "x"}),
    ("reply_to_message", {"message_id": "abc", "content": "x"}),
    ("reply_to_message", {"message_id": None, "content": "x"}),
    ("reply_to_message", {"message_id": [1], "content": "x"}),
    ("reply_to_message", {"message_id": 424242, "content": "x"}),
    ("reply_to_message", {"message_id": 1, "content": "   "}),
    ("get_message", {"message_id": -5}),
    ("get_message", {"message_id": "²"}),
    ("get_message", {"message_id": {"id": 1}}),
    ("get_agents", {"status": "sleepy"}),
    ("get_agents", {"status": 7}),
    ("wait_for_reply", {"message_id": 1, "timeout_seconds": -1}),
    ("wait_for_reply", {"message_id": "x", "timeout_seconds": 1}),
]


@pytest.mark.slow
async def test_mcp_tools_refuse_bad_input_and_change_no_message(tmp_path: Path) -> None:
    """Every refusal is an MCP tool error with a readable reason; the server survives
    all of them in one session and no message changes."""
    test_mcp = pytest.importorskip("test_mcp")
    db = tmp_path / "mcp.db"
    with Mesh(db) as mesh:
        bob = mesh.register("bob").session_id
        mesh.send(mesh.register("carol").session_id, "bob", "hello")
    repo = test_mcp.make_repo(tmp_path, "alpha")
    before = messages(db)
    async with test_mcp.connect(db, repo) as client:
        for tool, arguments in MCP_REFUSALS:
            result = await client.call_tool(tool, arguments)
            text = " ".join(test_mcp.texts(result))
            assert result.is_error, (tool, arguments, text)
            assert text.strip() and "Traceback" not in text, (tool, arguments, text)
            assert messages(db) == before, (tool, arguments)
        alive = await client.call_tool("send_message", {"content": "still here", "workspace": bob})
        assert not alive.is_error, test_mcp.texts(alive)
    assert messages(db)[-1][3] == "still here"


@pytest.mark.slow
async def test_mcp_refuses_a_boolean_message_id(tmp_path: Path) -> None:
    test_mcp = pytest.importorskip("test_mcp")
    db = tmp_path / "mcp.db"
    with Mesh(db) as mesh:
        mesh.send(mesh.register("carol").session_id, mesh.register("bob").session_id, "hello")
    before = messages(db)
    async with test_mcp.connect(db, test_mcp.make_repo(tmp_path, "alpha")) as client:
        result = await client.call_tool("reply_to_message", {"message_id": True, "content": "x"})
    assert result.is_error and messages(db) == before
