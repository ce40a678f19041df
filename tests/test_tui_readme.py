"""The README's key table and the app's bindings say the same."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_core import Mesh
from mesh_tui.app import MeshApp
from mesh_tui.screens.help import key_label

README = Path(__file__).resolve().parent.parent / "README.md"
# handled by widgets themselves, not bindings: moving in a list
WIDGET_KEYS = {"up", "down"}


def readme_keys() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("### Keys", 1)[1].split("\n\n", 2)[1]
    keys: set[str] = set()
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        keys.update(re.findall(r"`([^`]+)`", first))
    return keys


def binding_keys(tmp_path: Path) -> set[str]:
    mesh = Mesh(tmp_path / "m.db")
    app = MeshApp(mesh, live=False, name="alice")
    keys: set[str] = set()
    for _, bindings in app.key_sections():
        for key, _ in bindings:
            keys.update(k.strip() for k in key_label(key).split(","))
    mesh.close()
    return keys


def test_readme_key_table_matches_the_bindings(tmp_path: Path) -> None:
    bound = binding_keys(tmp_path)
    documented = readme_keys()
    assert bound - WIDGET_KEYS - documented == set(), "bound but not in the README"
    assert documented - bound - WIDGET_KEYS == set(), "in the README but not bound"
