"""Editing other tools' config files without losing anything: JSON (with comments kept
where the host reads JSONC) and TOML tables, each edit a `Change` with its diff, written
atomically with a `.bak` of what was there. Knows nothing of any host: `install` does.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh_core.errors import InvalidArgument


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


def read_text(path: Path) -> str | None:
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


def load_json(path: Path, text: str | None, *, jsonc: bool = False) -> dict[str, Any]:
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


def json_change(
    path: Path, edit: Callable[[dict[str, Any]], None], *, jsonc: bool = False
) -> Change:
    """Edit a JSON settings file. With `jsonc` (a host that reads comments), a file
    that has comments keeps them: only the top-level values the edit changed are
    rewritten in place, every other byte stays."""
    before = read_text(path)
    data = load_json(path, before, jsonc=jsonc)
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


def shell_quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"


def toml_table(text: str, header: str, body: str) -> str:
    """`text` with the table `[header]` replaced by `body` (or appended)."""
    pattern = re.compile(rf"^\[\s*{header}\s*\]\s*$", re.MULTILINE)
    found = pattern.search(text)
    if found:
        following = re.compile(r"^\s*\[", re.MULTILINE).search(text, found.end())
        end = following.start() if following else len(text)
        return text[: found.start()] + body + ("\n" if following else "") + text[end:]
    sep = ("\n" if text and not text.endswith("\n") else "") + ("\n" if text.strip() else "")
    return text + sep + body


def toml_top_level_key(text: str, key: str, value: str) -> str:
    """`key = value` at the top level, before the first table, unless the file already
    sets `key` there (the user's value stays)."""
    if key in tomllib.loads(text):
        return text
    first = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text)
    at = first.start() if first else len(text)
    head = text[:at]
    sep = "\n" if head and not head.endswith("\n") else ""
    return head + sep + f"{key} = {value}\n" + ("\n" if first else "") + text[at:]


def toml_key_in_table(text: str, table: str, key: str, value: str) -> str:
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
