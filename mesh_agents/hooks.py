"""`mesh hook EVENT`: Claude Code hooks that put waiting mesh messages in front of the model.

For sessions without channels (see docs/contract.md §5.3). Claude Code
runs the command with the hook's JSON on stdin (`session_id`, `cwd`, `hook_event_name`,
…) and reads what it prints:

- `SessionStart`, `UserPromptSubmit`, `PostToolUse`: this session's unread messages are
  taken and added as `hookSpecificOutput.additionalContext`, framed as in `mesh mcp`.
- `Stop`: while urgent or high messages wait, answer `{"decision": "block", "reason": …}`
  with every waiting message in the reason, so the model deals with them before it
  stops; otherwise print nothing and let it stop.
  A Stop that already follows a block (`stop_hook_active`) lets the session stop.
- `SessionEnd`: a session the hooks registered themselves is marked stopped.
- Gemini CLI's `BeforeAgent` and `AfterTool` act like `UserPromptSubmit` and
  `PostToolUse`.

Identity: the workspace of the hook's `cwd` — `$AGENT_MESH_NAME` if set, else the git
top-level folder's name, else the folder's name (docs/contract.md §3.2), the same rule `mesh mcp`
follows in that directory. So with both configured the hooks act as the MCP server's
session (the active one of that workspace); with hooks alone they register one.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from mesh_core.delivery import framer, hook_lead, take_text
from mesh_core.errors import InvalidArgument
from mesh_core.lifecycle import hook_session
from mesh_core.mesh import Mesh
from mesh_core.rules import CLIENT_HOOK

CLIENT = CLIENT_HOOK
# Claude Code's and Codex's names, then Gemini CLI's (BeforeAgent, AfterTool).
CONTEXT_EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "BeforeAgent", "AfterTool")
EVENTS = (*CONTEXT_EVENTS, "Stop", "SessionEnd")
BLOCKING_PRIORITIES = ("urgent", "high")
MORE = "call the agent-mesh MCP tool check_inbox to take them"


def read_hook_input(stream: IO[str]) -> dict[str, Any]:
    """The JSON object Claude Code writes on stdin (an empty stdin counts as `{}`)."""
    raw = stream.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(
            f"hook input is not JSON ({exc}); run `mesh hook` from a Claude Code hook"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidArgument("hook input must be a JSON object")
    return data


def run_hook(mesh: Mesh, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """What the hook prints for `event` (None: print nothing)."""
    if event not in EVENTS:
        raise InvalidArgument(f"unknown hook event {event!r}: use one of {', '.join(EVENTS)}")
    cwd = data.get("cwd") if isinstance(data.get("cwd"), str) else None
    agent = hook_session(mesh, cwd, CLIENT)
    if event == "SessionEnd":
        if agent.metadata.get("client") == CLIENT:
            mesh.deregister(agent.session_id)
        return None
    if event == "Stop":
        if data.get("stop_hook_active") is True:
            return None  # this stop already follows our block: never hold the session twice
        # peek_inbox returns urgent first: the first one tells whether any blocks.
        waiting = mesh.peek_inbox(agent.session_id, limit=1)
        if not waiting or waiting[0].priority not in BLOCKING_PRIORITIES:
            return None
        taken = mesh.take(agent.session_id, framer(mesh))
        if not taken.messages:  # another poller took them in between
            return None
        lead = hook_lead(
            agent,
            f"Before you stop: {len(taken.messages)} message(s) from other agents wait, at "
            "least one urgent or high. Deal with them, answer the senders, then finish.",
        )
        return {"decision": "block", "reason": take_text(taken, lead, MORE)}
    taken = mesh.take(agent.session_id, framer(mesh))
    if not taken.messages and not taken.set_aside:
        return None
    lead = hook_lead(agent, f"{len(taken.messages)} message(s) from other agents arrived for you.")
    return {
        "hookSpecificOutput": {
            "hookEventName": event,
            "additionalContext": take_text(taken, lead, MORE),
        }
    }


def main_hook(mesh: Mesh, event: str | None, stdin: IO[str] = sys.stdin) -> dict[str, Any] | None:
    """`mesh hook [EVENT]`: what to print for the event from the argument, else from the
    input's `hook_event_name` (None: print nothing). The CLI does the printing."""
    data = read_hook_input(stdin)
    chosen = event or data.get("hook_event_name")
    if not isinstance(chosen, str) or not chosen:
        raise InvalidArgument("no hook event: give one (`mesh hook Stop`) or pass hook_event_name")
    return run_hook(mesh, chosen, data)
