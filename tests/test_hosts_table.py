"""`tests/hosts/table.py`: the host suite's results become the README's hosts table and
its host-push figures (the suite itself needs the real CLIs; the rendering does not)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).parent / "hosts" / "table.py"


def _table() -> Any:
    spec = importlib.util.spec_from_file_location("hosts_table", TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(**overrides: Any) -> dict[str, Any]:
    run = {
        "key": "copilot",
        "host": "copilot",
        "version": "GitHub Copilot CLI 1.0.102.",
        "ran": True,
        "skip_reason": None,
        "tools_seen": ["get_agents"],
        "notice_seen": False,
        "start_route": "push",
        "mid_route": "push",
        "start_framed": {"sender": True},
        "mid_framed": {"sender": True},
        "mid_acked": True,
        "mid_seconds": 0.25,
        "mid_next": True,
        "active_after_exit": 0,
        "idle": "pushed",
    }
    return {**run, **overrides}


def _push(totals: list[float], typed: list[float]) -> dict[str, Any]:
    steps = ("woke", "pushing", "received", "send", "accepted", "user_message", "turn_start")
    samples = [
        {"message_id": n, "read": True, **{s: float(i + 1) for i, s in enumerate(steps)}}
        | {"request": total}
        for n, total in enumerate(totals, 1)
    ]
    return {
        "version": "GitHub Copilot CLI 1.0.102.",
        "load": [1.0, 1.5],
        "samples": samples,
        "typed": typed,
    }


def test_the_notice_column_says_when_a_push_left_nothing_to_announce() -> None:
    table = _table()
    pushed = table.row(_run())
    assert "not needed: pushed and acknowledged" in pushed and "**no**" not in pushed
    # Pushed but never acknowledged: mail waited, and no notice said so.
    assert "| **no** |" in table.row(_run(mid_acked=False))
    assert "| yes |" in table.row(_run(notice_seen=True, mid_route="tool"))


def test_readme_gets_the_table_and_the_push_figures(tmp_path: Path) -> None:
    table = _table()
    results = {
        "copilot": _run(),
        "copilot-idle": {
            "idle": "pushed: 0.6 s",
            "push": _push([500.0, 700.0, 600.0], [900.0, 1100.0]),
        },
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text(
        f"top\n{table.START}\nold\n{table.END}\nmiddle\n{table.PUSH_START}\nold\n{table.PUSH_END}\nend\n"
    )
    assert table.main(["--results", str(path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("top\n") and text.endswith("end\n")
    block = text.split(table.PUSH_START)[1].split(table.PUSH_END)[0]
    assert "3 messages" in block and "load average 1.0 before, 1.5 after" in block
    assert "| **the model request carrying it** | 600 | 500–700 |" in block
    assert "| 1,000 | 900–1,100 |" in block  # the typed prompt, median of two
    assert "push ÷ typed prompt: 0.60×" in block
    assert "ours (commit → `session.send`): 4 ms" in block
    assert "target ≤ 350 ms: MISS" in block
    assert "was in the next model request, 250 ms after the send" in block
    assert "pushed: 0.6 s" in text.split(table.START)[1]  # the idle column, merged in


def test_readme_without_push_figures_keeps_its_push_block(tmp_path: Path) -> None:
    table = _table()
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"copilot": _run()}))
    readme = tmp_path / "README.md"
    readme.write_text(f"{table.START}\n{table.END}\n{table.PUSH_START}\nkept\n{table.PUSH_END}\n")
    assert table.main(["--results", str(path), "--readme", str(readme)]) == 0
    assert "kept" in readme.read_text()
