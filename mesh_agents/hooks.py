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

Identity (mesh_core.lifecycle.hook_session, mesh_core.host_sessions): one host session is
one mesh session. The hook acts as the session of its host session — keyed on the input's
`session_id` and the host's pid and start time, since one host process may run several
sessions (Codex's app-server daemon) — else it registers one for that host session (it
lives as long as the host process), in the workspace of the hook's `cwd`
(docs/contract.md §3.2). It never revives a stopped session; `mesh mcp` takes over the
session its host session's hooks registered. `SessionEnd` only looks: it stops the
session the hooks registered for that host session, if any.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from mesh_core.delivery import framer, hook_lead, take_text
from mesh_core.errors import InvalidArgument, MeshError
from mesh_core.host_sessions import clean_host_session_id
from mesh_core.identity import identify
from mesh_core.lifecycle import hook_session
from mesh_core.liveness import host_process
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
    try:
        raw = stream.read()
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"hook input is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "run `mesh hook` from a Claude Code hook"
        ) from exc
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(
            f"hook input is not JSON ({exc}); run `mesh hook` from a Claude Code hook"
        ) from exc
    except RecursionError as exc:
        raise InvalidArgument(
            "hook input is JSON nested too deeply to read; run `mesh hook` from a Claude Code hook"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"hook input must be a JSON object, not {type(data).__name__}; "
            "run `mesh hook` from a Claude Code hook"
        )
    return data


def hook_cwd(data: dict[str, Any]) -> str | None:
    """The input's `cwd` if it can name a folder here; else refused with what is wrong
    (a NUL, a path longer than the system takes), never a traceback."""
    cwd = data.get("cwd")
    if cwd is None:
        return None
    if not isinstance(cwd, str):
        raise InvalidArgument(f"hook input cwd must be a path, not {type(cwd).__name__}")
    if "\x00" in cwd:
        raise InvalidArgument("hook input cwd holds a NUL character; it cannot be a path")
    try:
        encoded = os.fsencode(cwd)
        limit = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    except (UnicodeError, OSError, ValueError) as exc:
        raise InvalidArgument(f"hook input cwd is not a usable path ({exc})") from exc
    if len(encoded) >= limit:
        raise InvalidArgument(
            f"hook input cwd is {len(encoded):,} bytes long; paths here stop at {limit:,}"
        )
    return cwd


def run_hook(mesh: Mesh, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """What the hook prints for `event` (None: print nothing)."""
    if event not in EVENTS:
        raise InvalidArgument(f"unknown hook event {event!r}: use one of {', '.join(EVENTS)}")
    cwd = hook_cwd(data)
    host_sid = clean_host_session_id(data.get("session_id"))
    try:
        if event == "SessionEnd":  # look only: never register a session to stop it
            ended = mesh.host_session(identify(cwd).name, host_process(), host_sid)
            if ended is not None and ended.metadata.get("client") == CLIENT:
                mesh.deregister(ended.session_id)
            return None
        agent = hook_session(mesh, cwd, CLIENT, host_sid)
    except (OSError, ValueError) as exc:  # a folder name longer than the system takes, ...
        raise InvalidArgument(f"hook input cwd {cwd!r:.80} cannot be used ({exc})") from exc
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
    try:
        return run_hook(mesh, chosen, data)
    except MeshError:
        raise
    except Exception as exc:  # the host shows stderr to the user: one line, not a trace
        raise InvalidArgument(
            f"the hook failed ({type(exc).__name__}: {exc}); this is a bug in agent-mesh, "
            "please report it"
        ) from exc
