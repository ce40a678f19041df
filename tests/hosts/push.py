"""How long a pushed message takes to reach Copilot's model: `mesh send` → model request.

The interactive `copilot` TUI in a pseudo-terminal, as `mesh install copilot` set it up
(the folder trusted once, tools allowed, as its user answers once). Its first turn calls
check_inbox and ends; then, with nobody typing, a peer sends a message SAMPLES times,
each once the previous turn is over. Each is timed from `Mesh.send` returning (the
commit) to the model request that carries it, and split by the logs of each side:

- `mesh mcp`'s log (AGENT_MESH_LOG): when its participant woke for the commit, and when
  it began writing the notification (the inbox read and the message framed);
- the extension's own log (AGENT_MESH_EXTENSION_LOG): when the notification was read,
  when it went to `session.send`, when Copilot accepted it;
- Copilot's session log (`session-state/*/events.jsonl`): when it recorded the message
  as a user turn and when that turn started.

The reference, measured in the same session: a prompt typed into the TUI, from its
Enter key to the model request that carries it — Copilot's own time for a prompt.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import harness, hostbin, tty
from .model_server import Logged, ModelServer, call, say

SCRIPT = [call("check_inbox"), say("done")]
SAMPLES = 5
WAIT = 30.0  # seconds one message may take to reach a model request
START_WAIT = 90.0
SETTLE = 1.5  # the turn answered "done": let it end before the next sample
TARGET_MS = 350.0


@dataclass
class Sample:
    message_id: int
    sent_at: float  # epoch seconds, when `Mesh.send` returned
    request_at: float | None = None  # the model request that carried it
    steps: dict[str, float] = field(default_factory=dict)  # step name -> epoch seconds
    read: bool = False

    def after(self, step: str) -> float | None:
        """Milliseconds from the send to `step` (None when that step was not logged)."""
        at = self.request_at if step == "request" else self.steps.get(step)
        return None if at is None else (at - self.sent_at) * 1000


@dataclass
class PushRun:
    skip_reason: str | None = None
    version: str = "?"
    idle_reached: bool = False
    samples: list[Sample] = field(default_factory=list)
    typed: list[float | None] = field(default_factory=list)  # ms, Enter → model request
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    screen: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "load": [round(x, 2) for x in self.load],
            "samples": [
                {
                    "message_id": s.message_id,
                    "read": s.read,
                    **{step: _ms(s.after(step)) for step in STEPS},
                }
                for s in self.samples
            ],
            "typed": [_ms(t) for t in self.typed],
        }


# Each step of a push, in order, as the summary names them.
STEPS = {
    "woke": "`mesh mcp` saw the commit (its participant woke)",
    "pushing": "`mesh mcp` writes the notification (inbox read, message framed)",
    "received": "the extension read the notification",
    "send": "the extension called `session.send`",
    "accepted": "Copilot accepted it (`session.send` resolved)",
    "user_message": "Copilot recorded it as the user's turn (`user.message`)",
    "turn_start": "Copilot started the turn (`assistant.turn_start`)",
    "request": "the model request carrying it",
}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def trust_folder(home: Path, workspace: Path) -> None:
    """The user's one-time "Yes, and remember this folder" in the TUI."""
    path = home / ".copilot" / "config.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["trustedFolders"] = [str(workspace)]
    path.write_text(json.dumps(data, indent=2))


def copilot_events(home: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((home / ".copilot" / "session-state").glob("*/events.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            stamp = str(event.get("timestamp", ""))
            try:
                event["at"] = datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                continue
            found.append(event)
    return found


def attach_logs(
    samples: list[Sample], mesh_log: Path, extension_log: Path, events: list[dict[str, Any]]
) -> None:
    """Fill each sample's steps from the two logs and Copilot's session events."""
    by_id = {s.message_id: s for s in samples}
    changes: list[float] = []
    for line in mesh_log.read_text().splitlines() if mesh_log.exists() else []:
        stamp, _, _, _, text = (line.split(" ", 4) + [""] * 5)[:5]
        if text == "change seen":
            changes.append(float(stamp))
        elif text.startswith("pushing message "):
            sample = by_id.get(int(text.rsplit(" ", 1)[1]))
            if sample is not None and "pushing" not in sample.steps:
                sample.steps["pushing"] = float(stamp)
                # The wake that led to it: the last change seen before it.
                woke = [t for t in changes if t <= float(stamp)]
                if woke:
                    sample.steps["woke"] = woke[-1]
    if extension_log.exists():
        for line in extension_log.read_text().splitlines():
            entry = json.loads(line)
            sample = by_id.get(entry.get("message_id"))
            if sample is not None and entry["step"] in ("received", "send", "accepted"):
                sample.steps.setdefault(entry["step"], entry["t"] / 1000)
    for sample in samples:
        marker = f"<<<BEGIN MESH MESSAGE #{sample.message_id}>>>"
        user = next(
            (
                e
                for e in events
                if e.get("type") == "user.message" and marker in json.dumps(e.get("data"))
            ),
            None,
        )
        if user is None:
            continue
        sample.steps["user_message"] = user["at"]
        start = next(
            (
                e
                for e in events
                if e.get("type") == "assistant.turn_start" and e["at"] >= user["at"]
            ),
            None,
        )
        if start is not None:
            sample.steps["turn_start"] = start["at"]


def _wait_for(server: ModelServer, before: int, needle: str) -> Logged | None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for request in server.model_requests[before:]:
            if needle in request.text:
                return request
        time.sleep(0.005)
    return None


def run_copilot_push(tmp: Path, samples: int = SAMPLES) -> PushRun:
    run = PushRun()
    try:
        host, _ = tty.prepare(tmp, "copilot")
    except hostbin.HostUnavailable as exc:
        run.skip_reason = str(exc)
        return run
    argv, home, workspace = host.argv, host.home, host.workspace
    run.version, mesh, peer = host.version, host.mesh, host.peer
    trust_folder(home, workspace)
    extension_log = tmp / "extension.jsonl"
    with ModelServer(SCRIPT, log_path=tmp / "requests.jsonl") as server:
        _, host_env = harness.copilot_cmd(argv, server.url, home, host.env, tmp)
        mesh_log = tmp / "mesh.log"
        host_env.update(
            TERM="xterm-256color",
            AGENT_MESH_EXTENSION_LOG=str(extension_log),
            AGENT_MESH_LOG=str(mesh_log),
        )
        cmd = [*argv, "-i", harness.PROMPT, "--experimental", "--allow-all-tools"]
        pid, fd, term = tty.spawn(cmd, host_env, workspace, size=(40, 120))
        try:
            deadline = time.monotonic() + START_WAIT
            while time.monotonic() < deadline and not run.idle_reached:
                run.idle_reached = any(r.step == 1 for r in server.requests)
                time.sleep(0.2)
            if not run.idle_reached:
                return run
            time.sleep(SETTLE)
            run.load = (os.getloadavg()[0], 0.0)
            for n in range(samples):
                before = len(server.model_requests)
                message = mesh.send(peer, harness.WORKSPACE, f"pushed while idle, {n + 1}")
                sample = Sample(message.message_id, time.time())
                run.samples.append(sample)
                found = _wait_for(server, before, f"<<<BEGIN MESH MESSAGE #{message.message_id}>>>")
                sample.request_at = found.at if found else None
                time.sleep(SETTLE)
                # The reference: the same session, a prompt typed and sent with Enter.
                word = f"typed-prompt-{n + 1}"
                before = len(server.model_requests)
                os.write(fd, word.encode())
                time.sleep(0.3)
                entered = time.time()
                os.write(fd, b"\r")
                typed = _wait_for(server, before, word)
                run.typed.append((typed.at - entered) * 1000 if typed else None)
                time.sleep(SETTLE)
            run.load = (run.load[0], os.getloadavg()[0])
            for sample in run.samples:
                sample.read = mesh.get(sample.message_id).read
        finally:
            tty.end(pid, fd, term)
            run.screen = bytes(term.output).decode("utf-8", "replace")
            (tmp / "screen.txt").write_text(run.screen)
            mesh.close()
    attach_logs(run.samples, mesh_log, extension_log, copilot_events(home))
    return run
