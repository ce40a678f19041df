"""`mesh install CLIENT`: write the mesh into an agent CLI's own configuration.

One command per host, so a person (or an agent reading the README) sets it up without
editing JSON by hand. Every writer is idempotent (a second run changes nothing), keeps
every other setting of the file, refuses a file it cannot parse (touching nothing), keeps
a `.bak` copy of a file it changes, and reports what it changed as a unified diff.

The launch command is absolute — the `mesh` script beside this Python, else `mesh` on
PATH, else `python -m mesh_core` — because agent CLIs start MCP servers with a bare
environment where a virtualenv's `bin/` is rarely on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from mesh_core.config import resolve_db_path
from mesh_core.errors import InvalidArgument

from .config_files import (
    Change,
    apply,
    json_change,
    read_text,
    shell_quote,
    toml_key_in_table,
    toml_table,
    toml_top_level_key,
)

SERVER_KEY = "agent-mesh"
CLIENTS = ("copilot", "claude", "codex", "gemini", "json")
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")
CODEX_HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")
# Gemini's names for the moments a hook can add context (its BeforeAgent is Claude's
# UserPromptSubmit, AfterTool its PostToolUse), and SessionEnd.
GEMINI_HOOK_EVENTS = ("SessionStart", "BeforeAgent", "AfterTool", "SessionEnd")
# Tools that only read (or take the caller's own mail): may skip the host's approval.
READ_ONLY_TOOLS = ("get_agents", "get_message", "check_inbox")


def mesh_command() -> list[str]:
    """How an agent CLI should start `mesh`: an absolute path that works with a bare PATH."""
    beside = Path(sys.executable).parent / "mesh"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("mesh")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "mesh_core"]


def _db_args(db: str | None) -> list[str]:
    """Always the database path itself, resolved now (`--db`, else `$AGENT_MESH_DB`, else
    the default): a host may start the server with an environment that lacks
    `AGENT_MESH_DB` (Codex forwards none), and must still reach the same file."""
    return ["--db", str(resolve_db_path(db).resolve())]


def mcp_args(db: str | None, channel: bool = False, wake: bool = True) -> list[str]:
    return [
        *_db_args(db),
        "mcp",
        *(["--channel"] if channel else []),
        *([] if wake else ["--no-wake"]),
    ]


def _servers(data: dict[str, Any], key: str = "mcpServers") -> dict[str, Any]:
    servers = data.setdefault(key, {})
    if not isinstance(servers, dict):
        raise InvalidArgument(f"`{key}` is not a JSON object; fix it by hand, nothing was changed")
    return servers


# -- one writer per client ---------------------------------------------------------------------


def copilot_home(home: Path) -> Path:
    """Copilot CLI's folder: `$COPILOT_HOME` when set (as Copilot itself reads it), else
    `~/.copilot`."""
    env = os.environ.get("COPILOT_HOME")
    return Path(env).expanduser() if env else home / ".copilot"


def copilot(home: Path, db: str | None, *, use_mcp: bool = False) -> list[Change]:
    """The extension (tools + pushed delivery), or with `use_mcp` only an MCP server entry."""
    base = copilot_home(home)
    if use_mcp:
        entry = {
            "type": "local",
            "command": mesh_command()[0],
            "args": [*mesh_command()[1:], *mcp_args(db)],
            "tools": ["*"],
        }
        return [
            json_change(
                base / "mcp-config.json",
                lambda data: _servers(data).__setitem__(SERVER_KEY, entry),
            )
        ]
    folder = base / "extensions" / SERVER_KEY
    shim = resources.files("mesh_agents").joinpath("shims/extension.mjs").read_text("utf-8")
    launcher = json.dumps({"command": [*mesh_command(), *_db_args(db)]}, indent=2) + "\n"
    return [
        Change(folder / "extension.mjs", read_text(folder / "extension.mjs"), shim),
        Change(folder / "agent-mesh.json", read_text(folder / "agent-mesh.json"), launcher),
    ]


def _hook_line(db: str | None) -> str:
    return " ".join(shell_quote(part) for part in [*mesh_command(), *_db_args(db), "hook"])


def _merge_hooks(data: dict[str, Any], events: tuple[str, ...], line: str, where: str) -> None:
    """Our `mesh hook EVENT` group once per event, after the user's own groups."""
    table = data.setdefault("hooks", {})
    if not isinstance(table, dict):
        raise InvalidArgument(f"`hooks` in {where} is not an object; nothing was changed")
    for event in events:
        groups = [g for g in table.get(event, []) if not _is_ours(g)]
        groups.append({"hooks": [{"type": "command", "command": f"{line} {event}"}]})
        table[event] = groups


def claude(
    home: Path, db: str | None, *, hooks: bool = True, channel: bool = False
) -> list[Change]:
    """The user-scope MCP server in ~/.claude.json (what `claude mcp add -s user` writes);
    in ~/.claude/settings.json the read-only tools allowed without a prompt and, unless
    `hooks` is off, the `mesh hook` commands."""
    command = mesh_command()
    entry = {
        "type": "stdio",
        "command": command[0],
        "args": [*command[1:], *mcp_args(db, channel)],
        "env": {},
        # Claude Code waits for an alwaysLoad server before the first request (up to
        # MCP_CONNECT_TIMEOUT_MS, 5 s by default); other servers join in the background,
        # so a server slow to start (a loaded machine) missed the first request.
        "alwaysLoad": True,
    }
    line = _hook_line(db)

    def edit(data: dict[str, Any]) -> None:
        permissions = data.setdefault("permissions", {})
        if not isinstance(permissions, dict):
            raise InvalidArgument("`permissions` in ~/.claude/settings.json is not an object")
        allow = permissions.setdefault("allow", [])
        if not isinstance(allow, list):
            raise InvalidArgument("`permissions.allow` in ~/.claude/settings.json is not a list")
        for tool in READ_ONLY_TOOLS:
            if f"mcp__{SERVER_KEY}__{tool}" not in allow:
                allow.append(f"mcp__{SERVER_KEY}__{tool}")
        if hooks:
            _merge_hooks(data, HOOK_EVENTS, line, "~/.claude/settings.json")

    return [
        json_change(
            home / ".claude.json", lambda data: _servers(data).__setitem__(SERVER_KEY, entry)
        ),
        json_change(home / ".claude" / "settings.json", edit),
    ]


def _is_ours(group: Any) -> bool:
    """A hook group an earlier `mesh install` wrote."""
    hooks = group.get("hooks", []) if isinstance(group, dict) else []
    return any(
        isinstance(h, dict)
        and re.search(r"(^|[\s/])mesh(_core)?\b.*\shook\s", str(h.get("command", "")))
        for h in hooks
    )


def codex(home: Path, db: str | None, *, hooks: bool = True, wake: bool = True) -> list[Change]:
    """`[mcp_servers.agent-mesh]` in ~/.codex/config.toml (awaited at start-up, the
    read-only tools approved, the database path in its arguments), and unless `hooks` is
    off the `mesh hook` commands in ~/.codex/hooks.json with `[features] hooks = true`."""
    path = home / ".codex" / "config.toml"
    before = read_text(path)
    text = before or ""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(
            f"{path} is not valid TOML ({exc}); fix it, then run again (nothing was changed)"
        ) from exc
    command = mesh_command()
    table = (
        f"[mcp_servers.{SERVER_KEY}]\n"
        f"command = {json.dumps(command[0])}\n"
        f"args = {json.dumps([*command[1:], *mcp_args(db, wake=wake)])}\n"
        "required = true\n"
        "startup_timeout_sec = 30\n"
    )
    after = toml_table(text, rf'mcp_servers\.(?:{SERVER_KEY}|"{SERVER_KEY}")', table)
    for tool in READ_ONLY_TOOLS:
        after = toml_table(
            after,
            rf'mcp_servers\.(?:{SERVER_KEY}|"{SERVER_KEY}")\.tools\.{tool}',
            f'[mcp_servers.{SERVER_KEY}.tools.{tool}]\napproval_mode = "approve"\n',
        )
    if hooks:
        after = toml_key_in_table(after, "features", "hooks", "true")
    # The TUI's app-server daemon keeps a quit session loaded (its `mesh mcp` too) for a
    # minute by default: unloaded at once, the server sees EOF and its mail moves on.
    after = toml_top_level_key(after, "thread_unload_delay_secs", "0")
    parsed = tomllib.loads(after)
    if parsed.get("mcp_servers", {}).get(SERVER_KEY, {}).get("command") != command[0]:
        raise InvalidArgument(f"could not place the server in {path}; add it by hand")
    if before is not None and tomllib.loads(before) == parsed:
        after = before
    changes = [Change(path, before, after)]
    if hooks:
        line = _hook_line(db)
        changes.append(
            json_change(
                home / ".codex" / "hooks.json",
                lambda data: _merge_hooks(data, CODEX_HOOK_EVENTS, line, "~/.codex/hooks.json"),
            )
        )
    return changes


def gemini(home: Path, db: str | None, *, hooks: bool = True) -> list[Change]:
    """`mcpServers.agent-mesh` in ~/.gemini/settings.json and, unless `hooks` is off, the
    `mesh hook` commands for the events where Gemini adds a hook's context. The file may
    have comments (Gemini reads JSONC): they are kept."""
    command = mesh_command()
    entry = {"command": command[0], "args": [*command[1:], *mcp_args(db)]}
    line = _hook_line(db)

    def edit(data: dict[str, Any]) -> None:
        _servers(data)[SERVER_KEY] = entry
        if hooks:
            _merge_hooks(data, GEMINI_HOOK_EVENTS, line, "~/.gemini/settings.json")

    return [json_change(home / ".gemini" / "settings.json", edit, jsonc=True)]


def snippet(db: str | None) -> dict[str, Any]:
    """The `mcpServers` entry any MCP client takes (Cursor, Windsurf, Cline, …)."""
    command = mesh_command()
    return {
        "mcpServers": {SERVER_KEY: {"command": command[0], "args": [*command[1:], *mcp_args(db)]}}
    }


def plan(
    client: str,
    home: Path,
    db: str | None = None,
    *,
    hooks: bool = True,
    channel: bool = False,
    use_mcp: bool = False,
    wake: bool = True,
) -> list[Change]:
    """The files `mesh install CLIENT` writes, with their contents before and after."""
    if client == "copilot":
        return copilot(home, db, use_mcp=use_mcp)
    if client == "claude":
        return claude(home, db, hooks=hooks, channel=channel)
    if client == "codex":
        return codex(home, db, hooks=hooks, wake=wake)
    if client == "gemini":
        return gemini(home, db, hooks=hooks)
    raise InvalidArgument(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")


NEXT_STEPS = {
    "copilot": "start a new `copilot` session in a repository; extensions need experimental "
    "mode (`/experimental`, or `copilot --experimental`). Copilot asks once per repository "
    'to allow the extension\'s hooks ("elevated permissions"): allow it. In `copilot -p` '
    "runs, pass `--allow-all-tools` (or `--allow-tool`) or the extension is refused and "
    "never loads. Then run `mesh agents`: the session is listed by its folder name.",
    "claude": "start a new `claude` session in a repository, then run `mesh agents`: it is "
    "listed by its folder name. get_agents, get_message and check_inbox are allowed without "
    "a prompt; sending asks as your permission settings say.",
    "codex": "start a new `codex` session in a repository, then run `mesh agents`. Codex "
    "waits for the server at start-up (required = true); get_agents, get_message and "
    "check_inbox run without approval, sending asks as your approval policy says.",
    "gemini": "Gemini CLI starts MCP servers and hooks only in a trusted folder: trust the "
    "repository once when Gemini asks (or `/permissions` > trust; headless runs need "
    "GEMINI_CLI_TRUST_WORKSPACE=true). Then start `gemini` there and run `mesh agents`.",
}
HOOKS_NOTE = (
    "hooks: `mesh hook` runs at session start, at each prompt and before stopping to put "
    "waiting messages in front of the model (--no-hooks to leave them out)."
)
CODEX_TRUST_NOTE = (
    "codex hooks: Codex runs a hook from hooks.json only once you trust it. At the next "
    '`codex` start it says "Hooks need review": choose "Trust all and continue" (or trust '
    "them in `/hooks`). Until then, and in `codex exec`, which never asks, the hooks do "
    "not run and mail reaches the model only through check_inbox and the unread notice."
)
CODEX_UNLOAD_NOTE = (
    "codex sessions: `thread_unload_delay_secs = 0` (unless you set it) makes Codex's "
    "app-server daemon unload a session the moment you quit its TUI, so its `mesh mcp` "
    "stops at once and its unread mail moves to a live session of the workspace (by "
    "default the daemon keeps a quit session loaded, and on the mesh, for a minute)."
)
CODEX_WAKE_NOTE = (
    "codex wake (on; --no-wake to turn it off): when a message arrives while the session "
    "is idle, `mesh mcp` runs `codex queue` with a one-line notice (how many messages "
    "wait, call check_inbox; never the message text), which starts a turn in the running "
    "session; at most one such turn a minute, and only once the session has called an "
    "agent-mesh tool (Codex passes its thread id with each call)."
)
CODEX_NO_WAKE_NOTE = (
    "codex wake: off (--no-wake). A message sent while the session is idle waits for the "
    "next prompt (UserPromptSubmit hook) or session start."
)
CHANNEL_NOTE = (
    "channels: start Claude Code with `claude --dangerously-load-development-channels "
    "server:agent-mesh` so pushed messages reach it; a pushed message stays unread until "
    "the host accepts it, and a session started without channels gets it from the hooks, "
    "the unread notice and check_inbox instead."
)


def run(
    client: str,
    *,
    db: str | None = None,
    dry_run: bool = False,
    hooks: bool = True,
    channel: bool = False,
    use_mcp: bool = False,
    wake: bool = True,
    as_json: bool = False,
    home: Path | None = None,
) -> str:
    """`mesh install CLIENT`: plan, write (unless `dry_run`), and return what to show:
    each file's diff and the next steps, or one JSON document. The CLI prints it."""
    if client == "json":
        return json.dumps(snippet(db), indent=2) + "\n"
    changes = plan(
        client, home or Path.home(), db, hooks=hooks, channel=channel, use_mcp=use_mcp, wake=wake
    )
    apply(changes, dry_run)
    if as_json:
        files = [c.to_json() for c in changes]
        return json.dumps({"client": client, "dry_run": dry_run, "files": files}, indent=2) + "\n"
    out: list[str] = []
    for change in changes:
        if not change.changed:
            out.append(f"unchanged: {change.path} (already set up)\n")
            continue
        out.append(f"{'would update' if dry_run else 'updated'}: {change.path}\n")
        out.append(change.diff())
    if not dry_run:
        out.append(f"next: {NEXT_STEPS[client]}\n")
        if hooks and client in ("claude", "codex", "gemini"):
            out.append(HOOKS_NOTE + "\n")
        if hooks and client == "codex":
            out.append(CODEX_TRUST_NOTE + "\n")
        if channel:
            out.append(CHANNEL_NOTE + "\n")
        if client == "codex":
            out.append(CODEX_UNLOAD_NOTE + "\n")
            out.append((CODEX_WAKE_NOTE if wake else CODEX_NO_WAKE_NOTE) + "\n")
    return "".join(out)
