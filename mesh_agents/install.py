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

from mesh_core.config import resolve_db_path
from mesh_core.errors import InvalidArgument

SERVER_KEY = "agent-mesh"
CLIENTS = ("copilot", "claude", "codex", "gemini", "json")
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")
CODEX_HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop")
# Gemini's names for the moments a hook can add context (its BeforeAgent is Claude's
# UserPromptSubmit, AfterTool its PostToolUse), and SessionEnd.
GEMINI_HOOK_EVENTS = ("SessionStart", "BeforeAgent", "AfterTool", "SessionEnd")
# Tools that only read (or take the caller's own mail): may skip the host's approval.
READ_ONLY_TOOLS = ("get_agents", "get_message", "check_inbox")


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
    """Always the database path itself, resolved now (`--db`, else `$AGENT_MESH_DB`, else
    the default): a host may start the server with an environment that lacks
    `AGENT_MESH_DB` (Codex forwards none), and must still reach the same file."""
    return ["--db", str(resolve_db_path(db).resolve())]


def mcp_args(db: str | None, channel: bool = False) -> list[str]:
    return [*_db_args(db), "mcp", *(["--channel"] if channel else [])]


# -- reading and writing config files -------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def strip_jsonc(text: str) -> str:
    """JSON with comments (`//`, `/* */`) and trailing commas, as plain JSON: comments
    become spaces, so offsets in the text stay the same."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(ch)
            i += 1
    return re.sub(r",(\s*[}\]])", r" \1", "".join(out))


def _has_comments(text: str) -> bool:
    return strip_jsonc(text) != re.sub(r",(\s*[}\]])", r" \1", text)


def _load_json(path: Path, text: str | None, *, jsonc: bool = False) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(strip_jsonc(text) if jsonc else text)
    except ValueError as exc:
        raise InvalidArgument(
            f"{path} is not valid JSON ({exc}); fix or move it, then run `mesh install` again "
            "(nothing was changed)"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path} does not hold a JSON object; nothing was changed")
    return data


def _json_change(
    path: Path, edit: Callable[[dict[str, Any]], None], *, jsonc: bool = False
) -> Change:
    """Edit a JSON settings file. With `jsonc` (a host that reads comments), a file
    that has comments keeps them: only the top-level values the edit changed are
    rewritten in place, every other byte stays."""
    before = _read(path)
    data = _load_json(path, before, jsonc=jsonc)
    old = json.loads(json.dumps(data))
    edit(data)
    after = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if before is not None and old == data:
        after = before  # same settings: leave the user's formatting alone
    elif jsonc and before is not None and _has_comments(before):
        after = _splice_top_level(path, before, old, data)
    return Change(path, before, after)


def _top_level_spans(text: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """In JSONC `text`: the offset just after the opening `{`, and for each top-level
    key the span of its value."""
    plain = strip_jsonc(text)
    decoder = json.JSONDecoder()
    i = plain.index("{") + 1
    opening = i
    spans: dict[str, tuple[int, int]] = {}
    while True:
        while i < len(plain) and plain[i] in " \t\r\n,":
            i += 1
        if i >= len(plain) or plain[i] == "}":
            return opening, spans
        key, i = decoder.raw_decode(plain, i)
        i = plain.index(":", i) + 1
        while plain[i] in " \t\r\n":
            i += 1
        _, end = decoder.raw_decode(plain, i)
        spans[key] = (i, end)
        i = end


def _splice_top_level(path: Path, text: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    if set(old) - set(new):
        raise InvalidArgument(f"cannot remove settings from {path} while keeping its comments")
    opening, spans = _top_level_spans(text)
    edits: list[tuple[int, int, str]] = []
    for key, value in new.items():
        if key in old and old[key] == value:
            continue
        rendered = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        if key in spans:
            start, end = spans[key]
            edits.append((start, end, rendered))
        else:
            edits.append((opening, opening, f"\n  {json.dumps(key)}: {rendered},"))
    for start, end, rendered in sorted(edits, reverse=True):
        text = text[:start] + rendered + text[end:]
    if json.loads(strip_jsonc(text)) != new:
        raise InvalidArgument(f"could not edit {path} while keeping its comments; edit it by hand")
    return text


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
            _json_change(
                base / "mcp-config.json",
                lambda data: _servers(data).__setitem__(SERVER_KEY, entry),
            )
        ]
    folder = base / "extensions" / SERVER_KEY
    shim = resources.files("mesh_agents").joinpath("shims/extension.mjs").read_text("utf-8")
    launcher = json.dumps({"command": [*mesh_command(), *_db_args(db)]}, indent=2) + "\n"
    return [
        Change(folder / "extension.mjs", _read(folder / "extension.mjs"), shim),
        Change(folder / "agent-mesh.json", _read(folder / "agent-mesh.json"), launcher),
    ]


def _hook_line(db: str | None) -> str:
    return " ".join(_shell_quote(part) for part in [*mesh_command(), *_db_args(db), "hook"])


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
        _json_change(
            home / ".claude.json", lambda data: _servers(data).__setitem__(SERVER_KEY, entry)
        ),
        _json_change(home / ".claude" / "settings.json", edit),
    ]


def _is_ours(group: Any) -> bool:
    """A hook group an earlier `mesh install` wrote."""
    hooks = group.get("hooks", []) if isinstance(group, dict) else []
    return any(
        isinstance(h, dict)
        and re.search(r"(^|[\s/])mesh(_core)?\b.*\shook\s", str(h.get("command", "")))
        for h in hooks
    )


def _shell_quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"


def _toml_table(text: str, header: str, body: str) -> str:
    """`text` with the table `[header]` replaced by `body` (or appended)."""
    pattern = re.compile(rf"^\[\s*{header}\s*\]\s*$", re.MULTILINE)
    found = pattern.search(text)
    if found:
        following = re.compile(r"^\s*\[", re.MULTILINE).search(text, found.end())
        end = following.start() if following else len(text)
        return text[: found.start()] + body + ("\n" if following else "") + text[end:]
    sep = ("\n" if text and not text.endswith("\n") else "") + ("\n" if text.strip() else "")
    return text + sep + body


def _toml_key_in_table(text: str, table: str, key: str, value: str) -> str:
    """`key = value` inside `[table]`: set there, the table's other keys kept."""
    pattern = re.compile(rf"^\[\s*{table}\s*\]\s*$", re.MULTILINE)
    found = pattern.search(text)
    if not found:
        sep = ("\n" if text and not text.endswith("\n") else "") + ("\n" if text.strip() else "")
        return text + sep + f"[{table}]\n{key} = {value}\n"
    following = re.compile(r"^\s*\[", re.MULTILINE).search(text, found.end())
    end = following.start() if following else len(text)
    section = text[found.end() : end]
    line = re.compile(rf"^[ \t]*{key}[ \t]*=.*$", re.MULTILINE)
    if line.search(section):
        section = line.sub(f"{key} = {value}", section, count=1)
    else:
        section = f"\n{key} = {value}" + section
    return text[: found.end()] + section + text[end:]


def codex(home: Path, db: str | None, *, hooks: bool = True) -> list[Change]:
    """`[mcp_servers.agent-mesh]` in ~/.codex/config.toml (awaited at start-up, the
    read-only tools approved, the database path in its arguments), and unless `hooks` is
    off the `mesh hook` commands in ~/.codex/hooks.json with `[features] hooks = true`."""
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
        "required = true\n"
        "startup_timeout_sec = 30\n"
    )
    after = _toml_table(text, rf'mcp_servers\.(?:{SERVER_KEY}|"{SERVER_KEY}")', table)
    for tool in READ_ONLY_TOOLS:
        after = _toml_table(
            after,
            rf'mcp_servers\.(?:{SERVER_KEY}|"{SERVER_KEY}")\.tools\.{tool}',
            f'[mcp_servers.{SERVER_KEY}.tools.{tool}]\napproval_mode = "approve"\n',
        )
    if hooks:
        after = _toml_key_in_table(after, "features", "hooks", "true")
    parsed = tomllib.loads(after)
    if parsed.get("mcp_servers", {}).get(SERVER_KEY, {}).get("command") != command[0]:
        raise InvalidArgument(f"could not place the server in {path}; add it by hand")
    if before is not None and tomllib.loads(before) == parsed:
        after = before
    changes = [Change(path, before, after)]
    if hooks:
        line = _hook_line(db)
        changes.append(
            _json_change(
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

    return [_json_change(home / ".gemini" / "settings.json", edit, jsonc=True)]


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
) -> list[Change]:
    """The files `mesh install CLIENT` writes, with their contents before and after."""
    if client == "copilot":
        return copilot(home, db, use_mcp=use_mcp)
    if client == "claude":
        return claude(home, db, hooks=hooks, channel=channel)
    if client == "codex":
        return codex(home, db, hooks=hooks)
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
        if hooks and client in ("claude", "codex", "gemini"):
            print(HOOKS_NOTE)
        if channel:
            print(CHANNEL_NOTE)
    return 0
