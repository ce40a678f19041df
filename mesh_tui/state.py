"""What mesh-tui keeps between runs: unsent drafts, and a crash report if it ever dies.

Both live in the person's state directory ($XDG_STATE_HOME/agent-mesh, else
~/.local/state/agent-mesh), mode 0600: drafts are message text nobody else should read.
Drafts are keyed by database and conversation, so two meshes never share a draft.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from pathlib import Path
from types import TracebackType

DRAFTS_FILE = "tui-drafts.json"
CRASH_FILE = "tui-crash.txt"


def state_dir() -> Path:
    """Where the person's mesh-tui state lives (not created here)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agent-mesh"


def _write_private(path: Path, text: str) -> None:
    """Write `text` atomically with mode 0600 (a crash mid-write leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Drafts:
    """Unsent drafts per conversation ("to:<agent name>" or "thread:<id>") of one database.

    `path` None keeps them in memory only (tests, snapshots)."""

    def __init__(self, path: Path | None, database: str) -> None:
        self.path = path
        self.database = database
        self._all: dict[str, dict[str, str]] = self._load()
        self.texts: dict[str, str] = dict(self._all.get(database, {}))

    def _load(self) -> dict[str, dict[str, str]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(db): {str(k): v for k, v in convs.items() if isinstance(v, str) and v}
            for db, convs in data.items()
            if isinstance(convs, dict)
        }

    def get(self, key: str) -> str:
        return self.texts.get(key, "")

    def set(self, key: str, text: str) -> None:
        if text.strip():
            self.texts[key] = text
        else:
            self.texts.pop(key, None)

    def unsent(self) -> list[str]:
        """The conversations with a draft."""
        return sorted(self.texts)

    def save(self) -> Path | None:
        """Write every draft to the file; returns where (None: kept in memory only)."""
        if self.path is None:
            return None
        self._all[self.database] = dict(self.texts)
        if not self._all[self.database]:
            del self._all[self.database]
        _write_private(self.path, json.dumps(self._all, indent=1, ensure_ascii=False))
        return self.path


def crash_summary(error: BaseException) -> str:
    """Where it broke, without the exception's text or any variable's value: both can
    hold message bodies, names or paths."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f"mesh-tui stopped on an internal error: {type(error).__name__}"]
    for frame in frames[-6:]:
        lines.append(f"  {Path(frame.filename).name}:{frame.lineno} in {frame.name}")
    return "\n".join(lines)


def write_crash_report(path: Path, error: BaseException, tb: TracebackType | None = None) -> Path:
    """The full traceback (no local variables) in a private file for a bug report."""
    text = "".join(traceback.format_exception(type(error), error, tb or error.__traceback__))
    _write_private(path, text)
    return path
