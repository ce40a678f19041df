"""Who a working directory is on the mesh: workspace name, description, repo (contract §3.1).

Reads `.git` directly instead of running `git`, so an MCP server registers in
milliseconds; falls back to `git` only for layouts it cannot read (worktrees).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config import NAME_ENV

DESCRIPTION_FILES = (".github/copilot-instructions.md", "AGENTS.md", "CLAUDE.md")
MAX_DESCRIPTION_CHARS = 300


@dataclass(frozen=True)
class Identity:
    name: str
    description: str | None
    cwd: str
    repo: str | None


def git_toplevel(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _origin_from_config(config: Path) -> str | None:
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    in_origin = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_origin = bool(re.match(r'\[\s*remote\s+"origin"\s*\]', stripped))
            continue
        if in_origin:
            match = re.match(r"url\s*=\s*(.+)", stripped)
            if match:
                return match.group(1).strip()
    return None


def origin_url(top: Path) -> str | None:
    git = top / ".git"
    if git.is_dir():
        return _origin_from_config(git / "config")
    import subprocess  # only here: a command that registers nobody never loads it

    try:  # a worktree or submodule: `.git` is a file; let git resolve it
        out = subprocess.run(
            ["git", "-C", str(top), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def description_for(top: Path) -> str | None:
    """First non-empty line of the first instructions file, its leading `#`s removed."""
    for relative in DESCRIPTION_FILES:
        try:
            text = (top / relative).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip().lstrip("#").strip()
            if line:
                return line[:MAX_DESCRIPTION_CHARS]
    return None


def default_person_name() -> str:
    """`$AGENT_MESH_NAME`, else the login user's name: the TUI's and the CLI's identity."""
    env = os.environ.get(NAME_ENV, "").strip()
    if env:
        return env
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "human"


def identify(cwd: str | os.PathLike[str] | None = None, name: str | None = None) -> Identity:
    """The identity of an agent working in `cwd` (default: the current directory)."""
    folder = Path(cwd or os.getcwd()).resolve()
    top = git_toplevel(folder)
    root = top or folder
    chosen = (name or os.environ.get(NAME_ENV, "")).strip() or root.name or str(root)
    repo = (origin_url(top) or str(top)) if top else None
    return Identity(name=chosen, description=description_for(root), cwd=str(folder), repo=repo)
