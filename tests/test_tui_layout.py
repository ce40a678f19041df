"""Layout: 80x24 usable, too small says so, every resize re-lays out, rows scroll whole."""

from __future__ import annotations

import html
import re

from textual.widgets._footer import FooterKey
from tui_fixtures import World, make_app, open_person_thread, settle

from mesh_core.views import roster_counts
from mesh_tui.app import MeshApp
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation, MessageView
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList, fit_names


def screen_lines(app: object) -> list[str]:
    svg = app.export_screenshot()  # type: ignore[attr-defined]
    text = html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")
    return text.splitlines()


async def test_80x24_shows_both_sides_headers_on_one_line_and_the_whole_top_bar(
    world: World,
) -> None:
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_person_thread(world)(pilot)
        text = "\n".join(screen_lines(app))
        assert re.search(r"api-se\S* ↔ web-fr", text)  # two participants in a thread row
        assert "1 stopped" in text  # the top bar's last count is not cut off
        for view in app.query(MessageView):
            assert view.query_one(".msg-header").size.height == 1
    assert fit_names(["api-server", "web-frontend"], 18) == "api-se… ↔ web-fr…"


async def test_too_small_says_so_and_every_resize_relays_out(world: World) -> None:
    app = make_app(world)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot)
        assert app.screen.has_class("-too-small")
        assert app.query_one("#too-small").display
        assert "Make the terminal larger" in str(app.query_one("#too-small").render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not app.screen.has_class("-too-small") and app.screen.has_class("-narrow")
        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        assert not app.screen.has_class("-narrow")  # narrow does not stick
        await pilot.resize_terminal(90, 30)
        await pilot.pause()
        assert app.screen.has_class("-narrow")


async def test_top_bar_counts_match_the_rows(world: World) -> None:
    app = make_app(world)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.snapshot is not None
        counts = roster_counts(app.snapshot.roster)
        top = str(app.query_one("#topbar").render())
        for label in ("active", "stale", "stopped", "flooded", "rate-limited"):
            assert f"{counts[label]} {label}" in top
        shown = sum(1 for r in app.snapshot.roster if r.rate_limited)
        assert counts["rate-limited"] == shown


async def test_thread_list_scrolls_by_whole_rows(world: World) -> None:
    for n in range(30):
        peer = world.mesh.register(f"peer-{n:02d}").session_id
        world.mesh.send(peer, "api-server", f"hello {n}", new_thread=True)
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        for step in range(20):
            await pilot.press("j")
            await pilot.pause()
            assert threads.scroll_y % 2 == 0, f"half a row at the top after {step + 1} j"
        assert threads.scroll_y > 0
        for _ in range(7):
            await pilot.press("k")
            await pilot.pause()
            assert threads.scroll_y % 2 == 0
        for lines in (1, 3, -1, 1, -3):  # the mouse wheel scrolls by lines
            threads.scroll_relative(y=lines, animate=False, immediate=True)
            await pilot.pause()
            assert threads.scroll_y % 2 == 0, f"half a row at the top after a {lines}-line scroll"


async def test_thread_row_previews_the_newest_message(world: World) -> None:
    app = make_app(world)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        cell = app.query_one(ThreadList).get_cell(str(world.person_thread), "main")
    assert cell.plain.splitlines()[1].startswith("Not yet: card payments")  # not the root's


async def test_a_draft_in_progress_survives_a_too_small_terminal(world: World) -> None:
    """Typing, the terminal gets too small and large again: the composer has the focus
    back with the draft, and ctrl+j sends it (the database has it)."""
    app = MeshApp(world.mesh, live=False, session_id=world.me, name="alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        await pilot.press(*"still here")
        await pilot.resize_terminal(50, 12)
        await pilot.pause()
        assert app.screen.has_class("-too-small")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        composer = app.query_one(Composer)
        assert app.focused is not None and composer in app.focused.ancestors_with_self
        await pilot.press("ctrl+j")
        await settle(pilot)
        rows = world.mesh.connection().execute(
            "SELECT recipient_session_id FROM agent_messages WHERE content = 'still here'"
        )
        assert [r[0] for r in rows] == [world.ids["api-server"]]


def footer_keys(app: MeshApp) -> list[str]:
    """The descriptions the footer offers now (the keys of the focused pane)."""
    return [key.description for key in app.query(FooterKey)]


async def test_a_text_field_has_no_footer_entry_for_a_key_it_types(world: World) -> None:
    """In the composer or the filter, n, r, /, a, u and ? type themselves: the footer does
    not offer them there (it did: "/ Filter" beside the draft); outside it does."""
    app = make_app(world)
    async with app.run_test(size=(200, 40)) as pilot:
        await open_person_thread(world)(pilot)
        offered = footer_keys(app)
        assert {"Filter", "Reply", "New message", "Quit"} <= set(offered)
        await pilot.press("r")
        await settle(pilot)
        in_composer = footer_keys(app)
        assert "Send" in in_composer
        assert not {"Filter", "Reply", "New message", "All threads", "Quit", "Help"} & set(
            in_composer
        )
        await pilot.press(*"a/b?")
        assert app.query_one(Composer).draft.endswith("a/b?")
        await pilot.press("escape", "slash")
        await settle(pilot)
        assert not {"Filter", "Reply", "Help"} & set(footer_keys(app))
        await pilot.press("escape")
        await settle(pilot)
        assert "Filter" in footer_keys(app)


async def test_the_command_palette_key_leaves_no_column_of_the_key_list_beside_it(
    world: World,
) -> None:
    """Textual's compact footer gives each key a right margin, the docked palette key's
    too, so the last column showed the key list underneath ("^p paletter")."""
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_person_thread(world)(pilot)
        app.query_one(ThreadList).focus()
        await settle(pilot)
        palette = app.query_one("FooterKey.-command-palette", FooterKey)
        assert palette.region.right == 80  # up to the last column: nothing beside it


async def test_at_80_columns_each_pane_s_footer_shows_whole_keys_only(world: World) -> None:
    """Textual's footer clipped its row at the edge: the last key read `r Rep`, `q Q` or a
    bare `/`. Keys that do not fit are left out whole, the first ones kept, and come back
    when the terminal widens. `? Help`, which lists them all, is never left out."""
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_person_thread(world)(pilot)
        for pane in (Roster, ThreadList, Conversation):
            app.query(pane).first().focus()
            await settle(pilot)
            assert isinstance(app.focused, pane)
            palette = app.query_one("FooterKey.-command-palette", FooterKey)
            keys = [k for k in app.query(FooterKey) if not k.has_class("-command-palette")]
            shown = [k for k in keys if k.display]
            helps = [k for k in shown if k.action in ("help", "app.help")]
            assert [k.description for k in helps] == ["Help"], pane  # whatever else goes
            others = [k for k in keys if k not in helps]
            first = [k for k in others if k.display]
            assert first and others[: len(first)] == first, pane  # the first ones, in order
            assert len(shown) < len(keys), pane  # 80 columns do not hold them all
            for key in shown:
                assert key.region.right <= palette.region.x, (pane, key.description)
        await pilot.resize_terminal(220, 40)
        await settle(pilot)
        assert all(k.display for k in app.query(FooterKey))
