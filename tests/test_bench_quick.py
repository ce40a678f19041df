"""The benchmark works: `tests/bench/run.py --quick` runs every measurement end to end.

It checks that the command finishes, prints the table with every figure, and found
nothing broken: the run exits 1 when a figure has no number, when the watching
participant's deliveries did not come through its file-system watch (its safety poll is
set far longer than the run waits), or when something was lost or duplicated. It never
checks a speed (that is what the full run is for, on a quiet machine): a PASS/MISS
column is only looked at for being present.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).parent / "bench" / "run.py"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def _figures() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    figures: tuple[str, ...] = module.FIGURES
    return figures


@pytest.mark.slow
def test_quick_benchmark_prints_every_figure(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# before\n{START}\nold table\n{END}\n# after\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--readme", str(readme)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("figure ")), None)
    assert header is not None, done.stdout
    for word in ("ours", "reference", "ratio", "target", "result"):
        assert word in lines[header]
    table = lines[header + 2 :]
    for figure in _figures():
        row = next((line for line in table if line.startswith(figure)), None)
        assert row is not None, f"no row for {figure!r} in:\n{done.stdout}"
        assert row.rstrip().endswith(("PASS", "MISS", "info")), row
    assert "BROKEN" not in done.stdout
    written = readme.read_text(encoding="utf-8")
    assert written.startswith(f"# before\n{START}\n```text\n") and written.endswith(
        f"```\n{END}\n# after\n"
    ), written
    assert "old table" not in written
    block = written.split(START, 1)[1].split(END, 1)[0].splitlines()
    assert sum(line.startswith("figure ") for line in block) == 1, written  # one table
    assert [line for line in block if line.startswith(_figures())] == table_rows(lines), written


def table_rows(lines: list[str]) -> list[str]:
    """The rows of the final table (the run also prints each row as it comes)."""
    header = max(i for i, line in enumerate(lines) if line.startswith("figure "))
    return [line for line in lines[header + 2 :] if line.startswith(_figures())]
