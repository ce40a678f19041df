"""`mesh hook` with input of any shape: a one-line error and exit 0 or 1, never a trace.

Each case runs the real command, with the hook's JSON on stdin as Claude Code gives it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_core import Mesh


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CASES = {
    "nul-in-cwd": json.dumps({"cwd": "/tmp/a\x00b", "hook_event_name": "UserPromptSubmit"}),
    "5000-char-path": json.dumps({"cwd": "/" + "a" * 5000, "hook_event_name": "Stop"}),
    "5000-char-components": json.dumps(
        {"cwd": "/" + "/".join(["b" * 250] * 20), "hook_event_name": "SessionStart"}
    ),
    "long-folder-name": json.dumps({"cwd": "/tmp/" + "c" * 300, "hook_event_name": "Stop"}),
    "deeply-nested": '{"cwd": "/tmp", "hook_event_name": "Stop", "x": ' + _deep(100_000) + "}",
    "deeply-nested-top": _deep(100_000),
    "non-object": json.dumps(["UserPromptSubmit"]),
    "a-number": "42",
    "a-string": json.dumps("hello"),
    "null": "null",
    "not-json": "{oops",
    "cwd-a-number": json.dumps({"cwd": 5, "hook_event_name": "Stop"}),
    "cwd-a-list": json.dumps({"cwd": ["/tmp"], "hook_event_name": "Stop"}),
    "event-an-object": json.dumps({"hook_event_name": {"a": 1}}),
    "lone-surrogate-cwd": '{"cwd": "/tmp/\\ud83d", "hook_event_name": "Stop"}',
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_any_hook_input_gives_one_line_and_exit_0_or_1(db_path: Path, case: str) -> None:
    Mesh(db_path).close()
    result = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "--db", str(db_path), "hook"],
        input=CASES[case],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) <= 1, result.stderr[-2000:]
    if result.returncode == 1:
        assert result.stderr.startswith("mesh: ")


def test_non_utf8_hook_input_is_one_line(db_path: Path) -> None:
    Mesh(db_path).close()
    result = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "--db", str(db_path), "hook", "Stop"],
        input=b'{"cwd": "/tmp/\xff"}',
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode in (0, 1) and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 1
