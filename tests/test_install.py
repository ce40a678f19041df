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


def mesh_install(
    home: Path, *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    drop = ("AGENT_MESH_NAME", "AGENT_MESH_DB", "COPILOT_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["HOME"] = str(home)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "mesh_core", "install", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def install_twice(
    home: Path, *args: str, env_extra: dict[str, str] | None = None
) -> tuple[str, str]:
    first = mesh_install(home, *args, env_extra=env_extra)
    assert first.returncode == 0, first.stderr
    second = mesh_install(home, *args, env_extra=env_extra)
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


def test_claude_server_is_awaited_before_the_first_request(home: Path) -> None:
    install_twice(home, "claude")
    entry = json.loads((home / ".claude.json").read_text())["mcpServers"]["agent-mesh"]
    assert entry["alwaysLoad"] is True and entry["args"][-1] == "mcp"


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


# -- what each host's install writes ------------------------------------------------------


def _hook_commands(hooks: dict[str, Any]) -> dict[str, list[str]]:
    return {
        event: [h["command"] for group in groups for h in group["hooks"]]
        for event, groups in hooks.items()
    }


def test_codex_writes_the_server_awaited_approved_with_the_db_and_trusted_hooks_said(
    home: Path, tmp_path: Path
) -> None:
    db = tmp_path / "elsewhere" / "mesh.db"
    config = home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[features]\nweb_search = true  # mine\n")
    hooks_file = home / ".codex" / "hooks.json"
    write_json(hooks_file, {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}})
    first, second = install_twice(home, "codex", "--db", str(db))
    text = config.read_text()
    data = tomllib.loads(text)
    ours = data["mcp_servers"]["agent-mesh"]
    # Codex forwards no AGENT_MESH_DB: the path itself is in the arguments, resolved.
    assert ours["args"][-3:] == ["--db", str(db.resolve()), "mcp"]
    assert Path(ours["command"]).is_absolute()
    assert ours["required"] is True and ours["startup_timeout_sec"] >= 10
    approved = {t for t, v in ours["tools"].items() if v.get("approval_mode") == "approve"}
    assert approved == {"get_agents", "get_message", "check_inbox"}  # sending still asks
    assert data["features"] == {"web_search": True, "hooks": True}
    assert "web_search = true  # mine" in text
    commands = _hook_commands(json.loads(hooks_file.read_text())["hooks"])
    assert commands["Stop"][0] == "x"  # the user's own hook stays, first
    for event in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"):
        ours_line = commands[event][-1]
        assert ours_line.endswith(f" hook {event}") and f"--db {db.resolve()}" in ours_line
    assert "Trust all and continue" in first and "unchanged" in second


def test_codex_unloads_a_quit_session_at_once_unless_the_user_chose_a_delay(home: Path) -> None:
    """Codex 0.171's TUI daemon keeps a quit session, and its `mesh mcp`, loaded for a
    minute unless `thread_unload_delay_secs` says otherwise: install sets it to 0 at the
    top level (never inside a table), says so, and keeps a value the user set."""
    config = home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('# my settings\nmodel = "o4"\n\n[features]\nweb_search = true\n')
    done = mesh_install(home, "codex")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(config.read_text())
    assert data["thread_unload_delay_secs"] == 0 and data["model"] == "o4"
    assert "thread_unload_delay_secs" not in data["features"]
    assert (
        "thread_unload_delay_secs = 0" in done.stdout and "moves to a live session" in done.stdout
    )
    assert config.read_text().startswith("# my settings\n")
    config.write_text("thread_unload_delay_secs = 300\n")
    assert mesh_install(home, "codex").returncode == 0
    assert tomllib.loads(config.read_text())["thread_unload_delay_secs"] == 300


def test_codex_without_hooks_writes_no_hooks_and_no_feature(home: Path) -> None:
    done = mesh_install(home, "codex", "--no-hooks")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads((home / ".codex" / "config.toml").read_text())
    assert "features" not in data and not (home / ".codex" / "hooks.json").exists()
    assert data["mcp_servers"]["agent-mesh"]["args"][-1] == "mcp"
    assert "Trust all" not in done.stdout


def test_gemini_keeps_the_users_comments_and_adds_the_context_hooks(home: Path) -> None:
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(
        '{\n  // my theme, keep it\n  "theme": "Dracula",\n  /* servers */\n  "mcpServers": {}\n}\n'
    )
    first, second = install_twice(home, "gemini")
    text = settings.read_text()
    assert "// my theme, keep it" in text and "/* servers */" in text
    assert "trust" in first.lower() and "unchanged" in second
    # Gemini reads JSONC: with the comments gone, it is JSON.
    plain = "\n".join(
        line for line in text.splitlines() if not line.strip().startswith(("//", "/*"))
    )
    data = json.loads(plain)
    assert data["theme"] == "Dracula" and data["mcpServers"]["agent-mesh"]["args"][-1] == "mcp"
    commands = _hook_commands(data["hooks"])
    assert set(commands) == {"SessionStart", "BeforeAgent", "AfterTool", "SessionEnd"}
    for event, lines in commands.items():
        assert len(lines) == 1 and lines[0].endswith(f" hook {event}")


def test_copilot_honours_copilot_home(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "copilot-home"
    env = {"COPILOT_HOME": str(elsewhere)}
    first, _ = install_twice(home, "copilot", env_extra=env)
    folder = elsewhere / "extensions" / "agent-mesh"
    assert "joinSession" in (folder / "extension.mjs").read_text()
    assert str(folder) in first
    assert not (home / ".copilot").exists()
    install_twice(home, "copilot", "--mcp", env_extra=env)
    servers = json.loads((elsewhere / "mcp-config.json").read_text())["mcpServers"]
    assert servers["agent-mesh"]["args"][-1] == "mcp"
    assert not (home / ".copilot").exists()


def test_codex_wake_is_on_by_default_and_said_and_no_wake_turns_it_off(home: Path) -> None:
    """`mesh install codex` says the wake is on and how to turn it off; `--no-wake` puts
    `--no-wake` in the server's arguments (so `mesh mcp` never runs `codex queue`)."""
    config = home / ".codex" / "config.toml"
    done = mesh_install(home, "codex")
    assert done.returncode == 0, done.stderr
    assert "codex wake (on; --no-wake to turn it off)" in done.stdout
    assert "never the message text" in done.stdout
    assert tomllib.loads(config.read_text())["mcp_servers"]["agent-mesh"]["args"][-1] == "mcp"
    off = mesh_install(home, "codex", "--no-wake")
    assert off.returncode == 0, off.stderr
    assert "codex wake: off (--no-wake)" in off.stdout
    args = tomllib.loads(config.read_text())["mcp_servers"]["agent-mesh"]["args"]
    assert args[-2:] == ["mcp", "--no-wake"]
    claude = mesh_install(home, "claude")
    assert "codex wake" not in claude.stdout
