"""`mesh install CLIENT` on configs that already hold the user's own settings: run twice,
everything else kept, the second run a no-op; and the command it writes really starts a
server that joins the mesh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mesh_core import Mesh

TIMEOUT = 30.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def mesh_install(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_MESH_NAME", "AGENT_MESH_DB")}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mesh_core", "install", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def install_twice(home: Path, *args: str) -> tuple[str, str]:
    first = mesh_install(home, *args)
    assert first.returncode == 0, first.stderr
    second = mesh_install(home, *args)
    assert second.returncode == 0, second.stderr
    return first.stdout, second.stdout


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))


OTHER_SERVER = {"command": "npx", "args": ["-y", "@acme/other-mcp"], "env": {"TOKEN": "x"}}


def test_claude_keeps_other_servers_and_settings(home: Path, db_path: Path) -> None:
    config = home / ".claude.json"
    original = {
        "numStartups": 7,
        "mcpServers": {"other": OTHER_SERVER},
        "projects": {"/src/app": {"allowedTools": ["Bash"]}},
    }
    write_json(config, original)
    first, second = install_twice(home, "claude", "--db", str(db_path))
    data = json.loads(config.read_text())
    assert data["numStartups"] == 7 and data["projects"] == original["projects"]
    assert data["mcpServers"]["other"] == OTHER_SERVER
    entry = data["mcpServers"]["agent-mesh"]
    assert entry["type"] == "stdio" and Path(entry["command"]).is_absolute()
    assert entry["args"][-1] == "mcp" and str(db_path.resolve()) in entry["args"]
    assert "updated" in first and '+    "agent-mesh"' in first
    assert "unchanged" in second and "updated" not in second
    assert json.loads((home / ".claude.json.bak").read_text()) == original


def test_claude_hooks_merge_with_the_users_hooks(home: Path) -> None:
    settings = home / ".claude" / "settings.json"
    users_stop = {"hooks": [{"type": "command", "command": "say done"}]}
    write_json(
        settings,
        {
            "model": "opus",
            "hooks": {
                "Stop": [users_stop],
                "PreToolUse": [
                    {"matcher": "Bash", "hooks": [{"type": "command", "command": "lint"}]}
                ],
            },
        },
    )
    install_twice(home, "claude", "--hooks")
    data = json.loads(settings.read_text())
    assert data["model"] == "opus"
    assert data["hooks"]["PreToolUse"][0]["hooks"][0]["command"] == "lint"
    stop = data["hooks"]["Stop"]
    assert stop[0] == users_stop and len(stop) == 2  # ours added once, theirs kept
    assert stop[1]["hooks"][0]["command"].endswith(" hook Stop")
    for event in ("SessionStart", "UserPromptSubmit", "SessionEnd"):
        (group,) = data["hooks"][event]
        assert group["hooks"][0]["command"].endswith(f" hook {event}")


def test_codex_toml_keeps_the_rest_and_replaces_an_old_entry(home: Path) -> None:
    config = home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        'model = "o3"  # my model\n\n'
        '[mcp_servers.agent-mesh]\ncommand = "mesh-old"\nargs = ["serve"]\n\n'
        '[mcp_servers.other]\ncommand = "npx"\nargs = ["-y", "@acme/other-mcp"]\n'
    )
    first, second = install_twice(home, "codex")
    text = config.read_text()
    assert 'model = "o3"  # my model' in text  # comments and layout survive
    data = tomllib.loads(text)
    assert data["mcp_servers"]["other"] == {"command": "npx", "args": ["-y", "@acme/other-mcp"]}
    ours = data["mcp_servers"]["agent-mesh"]
    assert Path(ours["command"]).is_absolute() and ours["args"][-1] == "mcp"
    assert text.count("[mcp_servers.agent-mesh]") == 1
    assert '-command = "mesh-old"' in first and "unchanged" in second


def test_gemini_and_copilot(home: Path) -> None:
    gemini = home / ".gemini" / "settings.json"
    write_json(gemini, {"theme": "Dracula", "mcpServers": {"other": OTHER_SERVER}})
    install_twice(home, "gemini")
    data = json.loads(gemini.read_text())
    assert data["theme"] == "Dracula" and data["mcpServers"]["other"] == OTHER_SERVER
    args = data["mcpServers"]["agent-mesh"]["args"]
    assert args[-1] == "mcp" and args[0] == "--db" and Path(args[1]).is_absolute()

    first, second = install_twice(home, "copilot")
    folder = home / ".copilot" / "extensions" / "agent-mesh"
    assert "joinSession" in (folder / "extension.mjs").read_text()
    launcher = json.loads((folder / "agent-mesh.json").read_text())["command"]
    assert Path(launcher[0]).is_absolute()
    assert first.count("updated") == 2 and second.count("unchanged") == 2

    write_json(home / ".copilot" / "mcp-config.json", {"mcpServers": {"other": OTHER_SERVER}})
    install_twice(home, "copilot", "--mcp")
    servers = json.loads((home / ".copilot" / "mcp-config.json").read_text())["mcpServers"]
    assert servers["other"] == OTHER_SERVER and servers["agent-mesh"]["tools"] == ["*"]


def test_dry_run_writes_nothing_and_bad_json_is_left_alone(home: Path) -> None:
    done = mesh_install(home, "gemini", "--dry-run")
    assert done.returncode == 0 and "would update" in done.stdout
    assert not (home / ".gemini").exists()

    broken = home / ".claude.json"
    broken.write_text('{"mcpServers": {')
    refused = mesh_install(home, "claude")
    assert refused.returncode == 1 and "is not valid JSON" in refused.stderr
    assert broken.read_text() == '{"mcpServers": {'


def test_json_snippet_for_any_client() -> None:
    done = mesh_install(Path.home(), "json")
    server = json.loads(done.stdout)["mcpServers"]["agent-mesh"]
    assert Path(server["command"]).is_absolute() and server["args"][-1] == "mcp"


@pytest.mark.slow
def test_the_written_command_joins_the_mesh(home: Path, db_path: Path, tmp_path: Path) -> None:
    install_twice(home, "gemini", "--db", str(db_path))
    server = json.loads((home / ".gemini" / "settings.json").read_text())["mcpServers"][
        "agent-mesh"
    ]
    repo = tmp_path / "payments"
    repo.mkdir()
    # As an agent CLI starts it: a bare environment, no virtualenv on PATH.
    proc = subprocess.Popen(
        [server["command"], *server["args"]],
        cwd=repo,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if db_path.exists():
                with Mesh(db_path) as mesh:
                    if any(a.agent_name == "payments" for a in mesh.agents("active")):
                        break
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the installed command never registered"
            time.sleep(0.05)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=TIMEOUT)
