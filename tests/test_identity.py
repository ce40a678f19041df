"""docs/contract.md §3.2: workspace name, description and repo of a working directory, checked
on real repositories made with `git` in temporary folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mesh_core import Mesh
from mesh_core.config import NAME_ENV
from mesh_core.identity import identify


def git(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def no_name_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME_ENV, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    top = tmp_path / "my-api"
    (top / "src" / "deep").mkdir(parents=True)
    git(top, "init", "-q")
    return top


def test_name_is_the_git_top_level_folder_from_a_subfolder(repo: Path) -> None:
    deep = repo / "src" / "deep"
    ident = identify(deep)
    assert ident.name == "my-api"
    assert ident.cwd == str(deep.resolve())


def test_repo_is_the_origin_url_else_the_top_level_path(repo: Path) -> None:
    assert identify(repo / "src").repo == str(repo.resolve())
    git(repo, "remote", "add", "origin", "git@example.org:team/my-api.git")
    git(repo, "remote", "add", "upstream", "https://example.org/other.git")
    assert identify(repo / "src").repo == "git@example.org:team/my-api.git"


def test_outside_git_the_name_is_the_folder_and_there_is_no_repo(tmp_path: Path) -> None:
    folder = tmp_path / "scratch-space"
    folder.mkdir()
    ident = identify(folder)
    assert (ident.name, ident.repo, ident.cwd) == ("scratch-space", None, str(folder))


def test_env_name_and_name_argument(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME_ENV, "  from-env  ")
    assert identify(repo / "src").name == "from-env"
    assert identify(repo / "src", name="from-flag").name == "from-flag"
    monkeypatch.setenv(NAME_ENV, "   ")  # blank counts as unset
    assert identify(repo / "src").name == "my-api"


def test_description_prefers_copilot_instructions_then_agents_then_claude(repo: Path) -> None:
    assert identify(repo).description is None
    (repo / "CLAUDE.md").write_text("# Claude notes\n")
    assert identify(repo).description == "Claude notes"
    (repo / "AGENTS.md").write_text("\n\n##   Payments API: charges and refunds  \nmore\n")
    assert identify(repo).description == "Payments API: charges and refunds"
    (repo / ".github").mkdir()
    (repo / ".github" / "copilot-instructions.md").write_text("   \n#\n")  # nothing in it
    assert identify(repo).description == "Payments API: charges and refunds"
    (repo / ".github" / "copilot-instructions.md").write_text("#Billing service\n# other\n")
    assert identify(repo / "src" / "deep").description == "Billing service"


def test_description_comes_from_the_top_not_the_subfolder(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("# Top level\n")
    (repo / "src" / "AGENTS.md").write_text("# Sub folder\n")
    assert identify(repo / "src").description == "Top level"


def test_a_worktree_is_its_own_workspace_with_the_origin_of_its_repo(
    repo: Path, tmp_path: Path
) -> None:
    git(repo, "remote", "add", "origin", "https://example.org/team/my-api.git")
    git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    tree = tmp_path / "my-api-hotfix"
    git(repo, "worktree", "add", "-q", str(tree))
    ident = identify(tree)
    assert (ident.name, ident.repo) == ("my-api-hotfix", "https://example.org/team/my-api.git")


def test_register_uses_the_identity_of_its_folder(repo: Path, db_path: Path) -> None:
    git(repo, "remote", "add", "origin", "https://example.org/team/my-api.git")
    (repo / "AGENTS.md").write_text("# The API\n")
    with Mesh(db_path) as mesh:
        agent = mesh.register(cwd=repo / "src")
    assert (agent.agent_name, agent.agent_description, agent.repo, agent.cwd) == (
        "my-api",
        "The API",
        "https://example.org/team/my-api.git",
        str((repo / "src").resolve()),
    )
    assert agent.metadata["kind"] == "agent" and agent.metadata["pid"] == os.getpid()
    assert {"client", "host"} <= set(agent.metadata)
