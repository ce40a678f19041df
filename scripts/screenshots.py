"""Refresh the SVG screenshots in screenshots/ from the same scenes as the snapshot tests.

.venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tui_fixtures import SCENES, build_world, make_app


async def shoot(name: str, folder: Path) -> Path:
    size, build = SCENES[name]
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "agent-mesh.db")
        try:
            app = make_app(world)
            async with app.run_test(size=size) as pilot:
                await build(world)(pilot)
                await pilot.pause()
                path = folder / f"{name}.svg"
                path.write_text(app.export_screenshot(title=f"mesh-tui: {name}"))
        finally:
            world.mesh.close()
    return path


def main() -> int:
    folder = ROOT / "screenshots"
    folder.mkdir(exist_ok=True)
    for name in SCENES:
        print(asyncio.run(shoot(name, folder)).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
