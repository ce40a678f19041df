"""The README's test commands are what CI runs: the quick start's second block lists, in
order, the commands `.ci/run` runs (setup, every check, pytest, the host suite)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("# install with the test extras", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0] for line in block.splitlines()[1:] if line.strip()]
    return [part.strip() for line in lines for part in line.split("&&")]


def _ci_commands() -> list[str]:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = []
    for line in script.splitlines():
        step = re.match(r"(?:setup|check) (.+)$", line)
        if step:
            commands.append(step.group(1).strip())
        elif line.startswith(".venv/bin/"):  # a step run outside setup/check (the tests)
            commands.append(line.strip())
    return commands


def test_readme_test_commands_are_what_ci_runs() -> None:
    readme = _readme_commands()
    assert readme, "no test commands found in the README's quick start"
    assert readme == _ci_commands()
