"""Snapshots of mesh-tui's main views: fixed clock, fixed data, no timers, no blinking.

The same scenes make the SVGs in screenshots/ (scripts/screenshots.py)."""

from __future__ import annotations

from collections.abc import Callable

from tui_fixtures import SCENES, World, make_app

# pytest-textual-snapshot's fixture: compare(app, terminal_size=..., run_before=...) -> bool.
SnapCompare = Callable[..., bool]


def check(snap_compare: SnapCompare, world: World, scene: str) -> bool:
    size, build = SCENES[scene]
    return snap_compare(make_app(world), terminal_size=size, run_before=build(world))


def test_main_screen(snap_compare: SnapCompare, world: World) -> None:
    """Roster with active, stale, stopped, flooded and rate-limited agents."""
    assert check(snap_compare, world, "main")


def test_thread_open(snap_compare: SnapCompare, world: World) -> None:
    """The person's thread: urgent mark and the marker where their unread begin."""
    assert check(snap_compare, world, "thread")


def test_composer_refused_send(snap_compare: SnapCompare, world: World) -> None:
    """Too large: the byte counter in red, the rule's message, the draft kept."""
    assert check(snap_compare, world, "composer-error")


def test_help_screen(snap_compare: SnapCompare, world: World) -> None:
    assert check(snap_compare, world, "help")


def test_narrow_terminal(snap_compare: SnapCompare, world: World) -> None:
    assert check(snap_compare, world, "narrow")


def test_too_small_terminal(snap_compare: SnapCompare, world: World) -> None:
    """Below 60x16: one clear line asking for a larger terminal."""
    assert check(snap_compare, world, "too-small")


def test_agent_detail(snap_compare: SnapCompare, world: World) -> None:
    assert check(snap_compare, world, "agent-detail")


def test_quit_with_an_unsent_draft(snap_compare: SnapCompare, world: World) -> None:
    """80x24: q with a draft left asks first."""
    assert check(snap_compare, world, "quit-unsent-draft")


def test_notification_log(snap_compare: SnapCompare, world: World) -> None:
    """ctrl+n: every notice of the run, newest first, times local and relative."""
    assert check(snap_compare, world, "notifications")


def test_forget_confirm(snap_compare: SnapCompare, world: World) -> None:
    """80x24: forgetting a stopped session asks first, naming it."""
    assert check(snap_compare, world, "forget-confirm")
