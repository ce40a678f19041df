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

import difflib
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mesh_core.errors import InvalidArgument

SERVER_KEY = "agent-mesh"
CLIENTS = ("copilot", "claude", "codex", "gemini", "json")
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")


@dataclass(frozen=True)
class Change:
    """One file `install` wrote (or would write): its path and the diff."""

    path: Path
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                (self.before or "").splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.path} (before)" if self.before is not None else "/dev/null",
                tofile=str(self.path),
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "changed": self.changed, "diff": self.diff()}


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
    return ["--db", str(Path(db).expanduser().resolve())] if db else []


def mcp_args(db: str | None, channel: bool = False) -> list[str]:
    return [*_db_args(db), "mcp", *(["--channel"] if channel else [])]


# -- reading and writing config files -------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _load_json(path: Path, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"{path} is not valid JSON ({exc}); fix or move it, then run `mesh install` again "
            "(nothing was changed)"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path} does not hold a JSON object; nothing was changed")
    return data


def _json_change(path: Path, edit: Callable[[dict[str, Any]], None]) -> Change:
    before = _read(path)
    data = _load_json(path, before)
    edit(data)
    after = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if before is not None and _load_json(path, before) == data:
        after = before  # same settings: leave the user's formatting alone
    return Change(path, before, after)


def _servers(data: dict[str, Any], key: str = "mcpServers") -> dict[str, Any]:
    servers = data.setdefault(key, {})
    if not isinstance(servers, dict):
        raise InvalidArgument(f"`{key}` is not a JSON object; fix it by hand, nothing was changed")
    return servers


def apply(changes: list[Change], dry_run: bool) -> None:
    """Write each changed file atomically, keeping a `.bak` of what was there."""
    if dry_run:
        return
    for change in changes:
        if not change.changed:
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True)
        if change.before is not None:
            backup = change.path.with_name(change.path.name + ".bak")
            shutil.copy2(change.path, backup)
        temp = change.path.with_name(f".{change.path.name}.agent-mesh.tmp")
        temp.write_text(change.after, encoding="utf-8")
        if change.path.exists():
            shutil.copymode(change.path, temp)
        os.replace(temp, change.path)


# -- one writer per client ---------------------------------------------------------------------


def copilot(home: Path, db: str | None, *, use_mcp: bool = False) -> list[Change]:
    """The extension (tools + pushed delivery), or with `use_mcp` only an MCP server entry."""
    if use_mcp:
        entry = {
            "type": "local",
            "command": mesh_command()[0],
            "args": [*mesh_command()[1:], *mcp_args(db)],
            "tools": ["*"],
        }
        return [
            _json_change(
                home / ".copilot" / "mcp-config.json",
                lambda data: _servers(data).__setitem__(SERVER_KEY, entry),
            )
        ]
    folder = home / ".copilot" / "extensions" / SERVER_KEY
    shim = resources.files("mesh_agents").joinpath("shims/extension.mjs").read_text("utf-8")
    launcher = json.dumps({"command": [*mesh_command(), *_db_args(db)]}, indent=2) + "\n"
    return [
        Change(folder / "extension.mjs", _read(folder / "extension.mjs"), shim),
        Change(folder / "agent-mesh.json", _read(folder / "agent-mesh.json"), launcher),
    ]


def claude(
    home: Path, db: str | None, *, hooks: bool = False, channel: bool = False
) -> list[Change]:
    """The user-scope MCP server in ~/.claude.json (what `claude mcp add -s user` writes),
    and with `hooks` the `mesh hook` commands in ~/.claude/settings.json."""
    command = mesh_command()
    entry = {
        "type": "stdio",
        "command": command[0],
        "args": [*command[1:], *mcp_args(db, channel)],
        "env": {},
    }
    changes = [
        _json_change(
            home / ".claude.json", lambda data: _servers(data).__setitem__(SERVER_KEY, entry)
        )
    ]
    if hooks:
        line = " ".join(_shell_quote(part) for part in [*command, *_db_args(db), "hook"])

        def edit(data: dict[str, Any]) -> None:
            table = data.setdefault("hooks", {})
            if not isinstance(table, dict):
                raise InvalidArgument("`hooks` in ~/.claude/settings.json is not an object")
            for event in HOOK_EVENTS:
                groups = [g for g in table.get(event, []) if not _is_ours(g)]
                groups.append({"hooks": [{"type": "command", "command": f"{line} {event}"}]})
                table[event] = groups

        changes.append(_json_change(home / ".claude" / "settings.json", edit))
    return changes


def _is_ours(group: Any) -> bool:
    """A hook group an earlier `mesh install claude --hooks` wrote."""
    hooks = group.get("hooks", []) if isinstance(group, dict) else []
    return any(
        isinstance(h, dict)
        and re.search(r"(^|[\s/])mesh(_core)?\b.*\shook\s", str(h.get("command", "")))
        for h in hooks
    )


def _shell_quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"


def codex(home: Path, db: str | None) -> list[Change]:
    """`[mcp_servers.agent-mesh]` in ~/.codex/config.toml; the rest of the file untouched."""
    path = home / ".codex" / "config.toml"
    before = _read(path)
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
        f"args = {json.dumps([*command[1:], *mcp_args(db)])}\n"
    )
    header = re.compile(
        rf'^\[\s*mcp_servers\.(?:{SERVER_KEY}|"{SERVER_KEY}")\s*\]\s*$', re.MULTILINE
    )
    found = header.search(text)
    if found:
        following = re.compile(r"^\s*\[", re.MULTILINE).search(text, found.end())
        end = following.start() if following else len(text)
        after = text[: found.start()] + table + ("\n" if following else "") + text[end:]
    else:
        after = (
            text
            + ("\n" if text and not text.endswith("\n") else "")
            + ("\n" if text.strip() else "")
            + table
        )
    parsed = tomllib.loads(after)
    if parsed.get("mcp_servers", {}).get(SERVER_KEY, {}).get("command") != command[0]:
        raise InvalidArgument(f"could not place the server in {path}; add it by hand")
    if before is not None and tomllib.loads(before) == parsed:
        after = before
    return [Change(path, before, after)]


def gemini(home: Path, db: str | None) -> list[Change]:
    """`mcpServers.agent-mesh` in ~/.gemini/settings.json."""
    command = mesh_command()
    entry = {"command": command[0], "args": [*command[1:], *mcp_args(db)]}
    return [
        _json_change(
            home / ".gemini" / "settings.json",
            lambda data: _servers(data).__setitem__(SERVER_KEY, entry),
        )
    ]


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
    hooks: bool = False,
    channel: bool = False,
    use_mcp: bool = False,
) -> list[Change]:
    """The files `mesh install CLIENT` writes, with their contents before and after."""
    if client == "copilot":
        return copilot(home, db, use_mcp=use_mcp)
    if client == "claude":
        return claude(home, db, hooks=hooks, channel=channel)
    if client == "codex":
        return codex(home, db)
    if client == "gemini":
        return gemini(home, db)
    raise InvalidArgument(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")


NEXT_STEPS = {
    "copilot": "start a new `copilot` session in a repository (extensions need experimental "
    "mode: /experimental), then run `mesh agents`: it is listed by its folder name.",
    "claude": "start a new `claude` session in a repository, then run `mesh agents`: it is "
    "listed by its folder name.",
    "codex": "start a new `codex` session in a repository, then run `mesh agents`.",
    "gemini": "start a new `gemini` session in a repository, then run `mesh agents`.",
}
CHANNEL_NOTE = (
    "channels: start Claude Code with `claude --dangerously-load-development-channels "
    "server:agent-mesh` so pushed messages reach it; a session started without it leaves "
    "them unseen (they are marked read when pushed)."
)


def run(
    client: str,
    *,
    db: str | None = None,
    dry_run: bool = False,
    hooks: bool = False,
    channel: bool = False,
    use_mcp: bool = False,
    as_json: bool = False,
    home: Path | None = None,
) -> int:
    """`mesh install CLIENT`: plan, show, write (unless `dry_run`)."""
    if client == "json":
        print(json.dumps(snippet(db), indent=2))
        return 0
    changes = plan(client, home or Path.home(), db, hooks=hooks, channel=channel, use_mcp=use_mcp)
    apply(changes, dry_run)
    if as_json:
        print(
            json.dumps(
                {"client": client, "dry_run": dry_run, "files": [c.to_json() for c in changes]},
                indent=2,
            )
        )
        return 0
    for change in changes:
        if not change.changed:
            print(f"unchanged: {change.path} (already set up)")
            continue
        verb = "would update" if dry_run else "updated"
        print(f"{verb}: {change.path}")
        sys.stdout.write(change.diff())
    if not dry_run:
        print(f"next: {NEXT_STEPS[client]}")
        if channel:
            print(CHANNEL_NOTE)
    return 0
