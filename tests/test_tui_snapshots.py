"""Snapshots of mesh-tui's main views: fixed clock, fixed data, no timers, no blinking.

The same scenes make the SVGs in screenshots/ (scripts/screenshots.py)."""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Callable

import pytest
from pytest_textual_snapshot import node_to_report_path  # type: ignore[import-untyped]
from tui_fixtures import SCENES, World, make_app, svg_rows

# pytest-textual-snapshot's fixture: compare(app, terminal_size=..., run_before=...) -> bool.
SnapCompare = Callable[..., bool]
Check = Callable[[World, str], bool]


@pytest.fixture
def check(snap_compare: SnapCompare, request: pytest.FixtureRequest) -> Check:
    """Compare a scene with its snapshot; on a mismatch print what differs as text,
    so a CI log (which has no HTML report to open) says what the screen showed."""

    def run(world: World, scene: str) -> bool:
        size, build = SCENES[scene]
        if snap_compare(make_app(world), terminal_size=size, run_before=build(world)):
            return True
        # the plugin (1.1.0, pinned) pickles its report row for the node:
        # (passed, expected SVG, actual SVG, ...)
        data = pickle.loads(node_to_report_path(request.node).read_bytes())
        expected, actual = str(data[1]), str(data[2])
        diff = "\n".join(
            difflib.unified_diff(
                svg_rows(expected), svg_rows(actual), "snapshot", "this run", lineterm=""
            )
        )
        print(diff or "the text is the same; the difference is in the styles")
        return False

    return run


def test_main_screen(check: Check, world: World) -> None:
    """Roster with active, stale, stopped, flooded and rate-limited agents."""
    assert check(world, "main")


def test_thread_open(check: Check, world: World) -> None:
    """The person's thread: urgent mark and the marker where their unread begin."""
    assert check(world, "thread")


def test_composer_refused_send(check: Check, world: World) -> None:
    """Too large: the byte counter in red, the rule's message, the draft kept."""
    assert check(world, "composer-error")


def test_help_screen(check: Check, world: World) -> None:
    assert check(world, "help")


def test_narrow_terminal(check: Check, world: World) -> None:
    assert check(world, "narrow")


def test_too_small_terminal(check: Check, world: World) -> None:
    """Below 60x16: one clear line asking for a larger terminal."""
    assert check(world, "too-small")


def test_agent_detail(check: Check, world: World) -> None:
    assert check(world, "agent-detail")


def test_quit_with_an_unsent_draft(check: Check, world: World) -> None:
    """80x24: q with a draft left asks first."""
    assert check(world, "quit-unsent-draft")


def test_notification_log(check: Check, world: World) -> None:
    """ctrl+n: every notice of the run, newest first, times local and relative."""
    assert check(world, "notifications")


def test_forget_confirm(check: Check, world: World) -> None:
    """80x24: forgetting a stopped session asks first, naming it."""
    assert check(world, "forget-confirm")
