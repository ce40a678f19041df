"""Every MCP request gets a response, even one whose JSON holds a lone surrogate (what
`JSON.stringify` writes for text cut mid-emoji). Raw JSON-RPC lines to a real
`mesh mcp` process, as a JavaScript client writes them."""

from __future__ import annotations

import json
import selectors
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import INITIALIZE, identity_free_env

from mesh_agents.jsonrpc_stdin import repair_line
from mesh_core import Mesh

TIMEOUT = 30.0


def _read_response(proc: subprocess.Popen[bytes], request_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = proc.stdout.readline()
        if not line:
            break
        message = json.loads(line)
        if message.get("id") == request_id:
            return dict(message)
    raise AssertionError(f"no response to request {request_id}")


def _send(proc: subprocess.Popen[bytes], raw: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(raw.encode("ascii") + b"\n")
    proc.stdin.flush()


def test_a_tools_call_with_a_lone_surrogate_gets_a_response(tmp_path: Path, db_path: Path) -> None:
    with Mesh(db_path) as mesh:
        bob = mesh.register("bob", cwd=tmp_path)
    folder = tmp_path / "alice"
    folder.mkdir()
    env = identity_free_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_cli", "--db", str(db_path), "mcp", "--name", "alice"],
        cwd=folder,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        _send(
            proc,
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "js", "version": "1"},
                    },
                }
            ),
        )
        _read_response(proc, 1)
        _send(proc, '{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        # Written by hand: json.dumps would escape the surrogate the same way, but this is
        # byte for byte what JSON.stringify("cut \ud83d") gives.
        _send(
            proc,
            '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_message",'
            '"arguments":{"workspace":"bob","content":"cut \\ud83d here"}}}',
        )
        response = _read_response(proc, 2)
        assert "result" in response or "error" in response
        conn = sqlite3.connect(db_path)
        contents = [
            row[0]
            for row in conn.execute(
                "SELECT content FROM agent_messages WHERE recipient_session_id = ?",
                (bob.session_id,),
            )
        ]
        conn.close()
        assert contents == ["cut \ufffd here"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=TIMEOUT)


def test_repair_line_keeps_pairs_and_other_lines() -> None:
    pair = '{"a": "\\ud83d\\ude00"}\n'
    assert json.loads(repair_line(pair)) == {"a": "\U0001f600"}
    assert repair_line('{"a": "plain"}\n') == '{"a": "plain"}\n'
    assert json.loads(repair_line('{"\\udc00k": ["\\ud800", 1]}')) == {"\ufffdk": ["\ufffd", 1]}
    assert repair_line("not json \\ud800\n") == "not json \\ud800\n"


def _eager_tools(db_path: Path) -> list[dict[str, Any]]:
    """The tools as `MeshMCP.build()` lists them, built before anything is served."""
    import asyncio

    from mesh_agents.mcp_server import MeshMCP

    with Mesh(db_path) as mesh:
        app = MeshMCP(mesh, "reference").build()
        return [
            t.model_dump(by_alias=True, mode="json", exclude_none=True)
            for t in asyncio.run(app.list_tools())
        ]


def _log_steps(log: Path) -> list[str]:
    wanted = ("first answer written", "tools added")
    return [w for line in log.read_text().splitlines() for w in wanted if line.endswith(w)]


def test_initialize_is_answered_before_the_tools_are_built(tmp_path: Path, db_path: Path) -> None:
    """Building the six tools' schemas (the SDK's pydantic work) waits until the answer to
    `initialize` is on the wire, also for a client that writes its requests without
    waiting for that answer; the list is the one an eagerly built server gives."""
    expected = _eager_tools(tmp_path / "reference.db")
    for pipelined in (False, True):
        log = tmp_path / f"mesh-{pipelined}.log"
        env = identity_free_env()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mesh_cli", "--db", str(db_path), "mcp", "--name", "alice"],
            cwd=tmp_path,
            env={**env, "AGENT_MESH_LOG": str(log)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            rest = [
                '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
                '{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}',
            ]
            _send(
                proc,
                "\n".join([json.dumps(INITIALIZE), *rest]) if pipelined else json.dumps(INITIALIZE),
            )
            assert "result" in _read_response(proc, 1)
            if not pipelined:
                for line in rest:
                    _send(proc, line)
            listed = _read_response(proc, 2)["result"]["tools"]
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=TIMEOUT)
        assert listed == expected
        assert _log_steps(log) == ["first answer written", "tools added"], pipelined
