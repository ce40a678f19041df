"""The Copilot CLI extension under real Node, against a stand-in `@github/copilot-sdk/extension`.

The stand-in `joinSession` records the tools, answers commands from the test on stdin
(call a tool handler), and prints every `session.send` as a JSON line, so the test sees
exactly what the Copilot session would receive. The extension runs the real `mesh mcp`
against a real database file; the message comes from another process."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import identity_free_env

from mesh_core import Mesh

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js"),
]

TIMEOUT = 30.0
SHIM = Path(__file__).resolve().parents[1] / "mesh_agents" / "shims" / "extension.mjs"

STAND_IN = """\
import { createInterface } from "node:readline";

const out = (event) => process.stdout.write(JSON.stringify(event) + "\\n");

export async function joinSession({ tools = [], hooks = {} } = {}) {
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const session = {
    send: async (options) => out({ event: "send", ...options }),
    log: async (text) => out({ event: "log", text }),
    on: () => {},
  };
  const start = hooks.onSessionStart ? await hooks.onSessionStart({}) : null;
  out({ event: "joined", tools: tools.map((tool) => tool.name), start });
  createInterface({ input: process.stdin })
    .on("line", async (line) => {
      const { call, args } = JSON.parse(line);
      out({ event: "result", tool: call, ...(await byName.get(call).handler(args, {})) });
    })
    .on("close", () => process.exit(0));
  return session;
}
"""


@pytest.fixture
def extension(tmp_path: Path, db_path: Path) -> Path:
    """The shim installed as Copilot would load it, beside a stand-in SDK."""
    package = tmp_path / "copilot" / "node_modules" / "@github" / "copilot-sdk"
    package.mkdir(parents=True)
    (package / "package.json").write_text(
        json.dumps(
            {
                "name": "@github/copilot-sdk",
                "type": "module",
                "exports": {"./extension": "./extension.mjs"},
            }
        )
    )
    (package / "extension.mjs").write_text(STAND_IN)
    folder = tmp_path / "copilot" / "extensions" / "agent-mesh"
    folder.mkdir(parents=True)
    shutil.copy(SHIM, folder / "extension.mjs")
    command = [sys.executable, "-m", "mesh_core", "--db", str(db_path)]
    (folder / "agent-mesh.json").write_text(json.dumps({"command": command}))
    return folder / "extension.mjs"


class Node:
    """The extension process, its stdout read line by line in a thread."""

    def __init__(self, script: Path, cwd: Path, **extra_env: str) -> None:
        env = identity_free_env()
        env.update(extra_env)
        self.proc = subprocess.Popen(
            ["node", str(script)],
            cwd=cwd,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(json.loads(line))

    def next(self, event: str) -> dict[str, Any]:
        while True:
            try:
                item = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no {event!r} from the extension: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            if item["event"] == event:
                return item

    def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"call": tool, "args": args}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.next("result")

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=TIMEOUT)


def test_shim_offers_the_tools_and_pushes_messages_into_the_session(
    extension: Path, db_path: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "web-app"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    node = Node(extension, workspace)
    try:
        joined = node.next("joined")
        assert joined["tools"] == [
            "get_agents",
            "send_message",
            "reply_to_message",
            "get_message",
            "check_inbox",
            "wait_for_reply",
        ]
        assert "agent-mesh" in joined["start"]["additionalContext"]
        with Mesh(db_path) as mesh:
            (me,) = [a for a in mesh.agents("active") if a.agent_name == "web-app"]
            assert (me.kind, me.metadata["client"]) == ("agent", "mesh-mcp")

        cli = [sys.executable, "-m", "mesh_core", "--db", str(db_path)]
        sent = subprocess.run(
            [
                *cli,
                "send",
                "web-app",
                "is the API up?",
                "--from",
                "ops",
                "--priority",
                "high",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        message_id = json.loads(sent.stdout)["message_id"]
        pushed = node.next("send")
        assert pushed["mode"] == "immediate"
        assert "is the API up?" in pushed["prompt"]
        assert f'Message #{message_id} from workspace "ops"' in pushed["prompt"]

        answer = node.call("reply_to_message", {"message_id": message_id, "content": "yes"})
        assert answer["resultType"] == "success", answer
        taken = subprocess.run(
            [*cli, "inbox", "--from", "ops", "--json"], capture_output=True, text=True, check=True
        )
        assert [m["content"] for m in json.loads(taken.stdout)] == ["yes"]

        refused = node.call("send_message", {"content": "hi", "workspace": "nobody"})
        assert refused["resultType"] == "failure"
        assert refused["textResultForLlm"].startswith("unknown recipient 'nobody'")
    finally:
        node.close()
    # Node gone, `mesh mcp` reads EOF and marks the session stopped.
    deadline = time.monotonic() + TIMEOUT
    with Mesh(db_path) as mesh:
        while [a.status.value for a in mesh.agents("all") if a.agent_name == "web-app"] != [
            "stopped"
        ]:
            assert time.monotonic() < deadline, "the session was never marked stopped"
            time.sleep(0.05)


def test_shim_says_what_to_do_when_mesh_cannot_start(extension: Path, tmp_path: Path) -> None:
    (extension.parent / "agent-mesh.json").write_text(
        json.dumps({"command": [str(tmp_path / "no-such-mesh")]})
    )
    done = subprocess.run(
        ["node", str(extension)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode != 0 and done.stdout == ""  # never joined the session
    assert "agent-mesh: could not start" in done.stderr
    assert "mesh install copilot" in done.stderr


def test_shim_logs_each_step_of_a_push_when_asked(
    extension: Path, db_path: Path, tmp_path: Path
) -> None:
    """AGENT_MESH_EXTENSION_LOG: the extension writes when it received a push, handed it
    to session.send, saw it accepted and had it acknowledged (marked read), in that order;
    AGENT_MESH_LOG: `mesh mcp` writes when it saw the change and when it had written the
    notification (before writing it). The host suite splits a push's latency into ours and Copilot's with them."""
    workspace = tmp_path / "web-app"
    workspace.mkdir()
    log, server_log = tmp_path / "extension.jsonl", tmp_path / "mesh.log"
    node = Node(
        extension,
        workspace,
        AGENT_MESH_EXTENSION_LOG=str(log),
        AGENT_MESH_LOG=str(server_log),
    )
    try:
        node.next("joined")
        with Mesh(db_path) as mesh:
            ops = mesh.register("ops", kind="cli").session_id
            message_id = mesh.send(ops, "web-app", "is the API up?").message_id
            assert f"#{message_id}" in node.next("send")["prompt"]
            deadline = time.monotonic() + TIMEOUT
            while not mesh.get(message_id).read:
                assert time.monotonic() < deadline, "the push was never acknowledged"
                time.sleep(0.02)
        entries: list[dict[str, Any]] = []
        while [e["step"] for e in entries][-1:] != ["acked"]:
            assert time.monotonic() < deadline, f"no 'acked' in the log: {entries}"
            time.sleep(0.02)
            entries = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        node.close()
    assert [e["step"] for e in entries] == ["received", "send", "accepted", "acked"]
    assert {e["message_id"] for e in entries} == {message_id}
    assert entries[-1]["marked"] == [message_id]
    times = [e["t"] for e in entries]
    assert times == sorted(times) and abs(times[0] / 1000 - time.time()) < TIMEOUT
    lines = [line.split(" ", 4) for line in server_log.read_text().splitlines()]
    pushed = [float(t) for t, _, _, _, text in lines if text == f"pushing message {message_id}"]
    seen = [float(t) for t, _, _, _, text in lines if text == "change seen"]
    assert len(pushed) == 1 and any(t <= pushed[0] for t in seen), lines
    assert pushed[0] <= times[0] / 1000 + 0.002  # before the extension read it (to the ms)
