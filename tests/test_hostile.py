"""Hostile text: message bodies and agent names never act on the terminal.

Other programs write them (and, through those programs, whatever text an agent read),
so they may carry escape sequences, Rich markup and bidi tricks. The `mesh` command's
table output is run in a real pseudo-terminal, with colour forced, so Rich is in
terminal mode; only Rich's own colour codes may reach the screen.
"""

from __future__ import annotations

import os
import pty
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_core import Mesh, MeshConfig
from mesh_core.errors import InvalidName
from mesh_core.text import safe_line, safe_text

CSI_CLEAR = "\x1b[2J\x1b[H"
OSC_TITLE = "\x1b]0;pwned\x07"
OSC_52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # writes "rm -rf ~" into the clipboard
OSC_HYPERLINK = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
DCS = "\x1bP+q544e\x1b\\"
C1_CSI = "\x9b31m"  # 8-bit CSI
C1_OSC = "\x9d0;title\x9c"  # 8-bit OSC … ST
BIDI = "\u202eexe.txt\u202c and \u2066isolate\u2069 and \u200fmark"
ZERO_WIDTH = "ad\u200bmin\u2060x\ufeffy\u00ad"
TAG_SMUGGLED = "ok\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065"  # "ignore"
LINE_TRICKS = "safe\rEVIL\b\b\u2028next\u2029para\x85nel"
MARKUP = "[bold]x[/] [/] [link=file:///etc/passwd]click[/link] [red on red]hidden[/]"

HOSTILE = [
    CSI_CLEAR,
    OSC_TITLE,
    OSC_52,
    OSC_HYPERLINK,
    DCS,
    C1_CSI,
    C1_OSC,
    BIDI,
    ZERO_WIDTH,
    TAG_SMUGGLED,
    LINE_TRICKS,
    MARKUP,
]

# What must never reach a terminal from untrusted text: C0 controls but tab and newline,
# DEL, C1 controls, bidi controls, invisible and zero-width characters, tag characters.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2028\u2029\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_safe_text_leaves_nothing_a_terminal_acts_on(hostile: str) -> None:
    for shown in (safe_text(hostile), safe_line(hostile), safe_line(hostile, 12)):
        assert not FORBIDDEN.search(shown), repr(shown)


def test_safe_text_shows_what_it_replaced() -> None:
    """Nothing is hidden: each removed character leaves a visible mark."""
    assert safe_text(CSI_CLEAR) == "␛[2J␛[H"
    assert safe_text(C1_CSI) == "<U+009B>31m"
    assert safe_text("\u202eexe") == "<U+202E>exe"
    assert safe_text("a\u200bb") == "a<U+200B>b"
    assert safe_text("\U000e0069") == "<U+E0069>"
    assert safe_text("x\udcffy") == "x<U+DCFF>y"  # undecodable byte, as Python keeps it
    assert safe_text("tab\tand\nnewline") == "tab\tand\nnewline"
    assert "\n" not in safe_line("two\nlines") and "⏎" in safe_line("two\nlines")


def test_safe_text_keeps_ordinary_text_of_every_script() -> None:
    for fine in (
        "héllo wörld",
        "日本語のテキスト",
        "עברית ועربית",
        "emoji 👩‍💻 family 👨‍👩‍👧",
        "math ∑ ≤ ∞",
        "[not markup]",
        "tab\there",
    ):
        assert safe_text(fine) == fine


def test_hostile_names_are_refused_at_registration(mesh: Mesh) -> None:
    for name in ("evil\x1b[2J", "a\u202eb", "ad\u200bmin", "x\x9by", "\U000e0041name", "x\udcff"):
        with pytest.raises(InvalidName):
            mesh.register(name)
    assert mesh.agents("all") == []


# -- the CLI in a pseudo-terminal ---------------------------------------------------------


def run_in_pty(*args: str, env: dict[str, str]) -> str:
    """Run `mesh ARGS` with a pseudo-terminal as stdout; return what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_core", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return b"".join(chunks).decode("utf-8", errors="strict").replace("\r\n", "\n")


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    """A mesh where another client wrote hostile names and bodies (raw SQL: another
    client need not follow our name rules)."""
    db = tmp_path / "hostile.db"
    with Mesh(db, config=MeshConfig(rate_limit=100)) as mesh:
        alice = mesh.register("alice").session_id
        bob = mesh.register("bob").session_id
        first = mesh.send(alice, "bob", "start")
        for body in HOSTILE:
            mesh.reply(alice, first.message_id, body)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE agent_sessions SET agent_name = ?, agent_description = ? WHERE session_id = ?",
            ("alice" + OSC_TITLE + BIDI + MARKUP, OSC_52 + CSI_CLEAR + MARKUP, alice),
        )
    assert bob
    return db


def assert_inert(screen: str) -> None:
    rest = RICH_SGR.sub("", screen)  # Rich's own styling is the only escape allowed
    found = FORBIDDEN.search(rest)
    if found is not None:
        around = rest[max(0, found.start() - 40) : found.end() + 40]
        raise AssertionError(f"{found.group(0)!r} reached the terminal: {around!r}")
    assert "[bold]x[/]" in rest  # markup shown literally, not applied
    assert "␛" in rest  # and the escapes shown, not dropped silently


@pytest.mark.parametrize(
    "args",
    [("agents", "--status", "all"), ("show", "1"), ("inbox", "--from", "bob")],
    ids=["agents", "show", "inbox"],
)
def test_cli_tables_in_a_terminal_show_hostile_text_inert(
    hostile_db: Path, args: tuple[str, ...]
) -> None:
    env = dict(
        os.environ,
        FORCE_COLOR="1",
        TERM="xterm-256color",
        COLUMNS="160",
        AGENT_MESH_DB=str(hostile_db),
        AGENT_MESH_NAME="bob",
    )
    env.pop("NO_COLOR", None)
    screen = run_in_pty(*args, "--db", str(hostile_db), env=env)
    assert RICH_SGR.search(screen), "Rich was not in terminal mode: the test proves nothing"
    assert_inert(screen)
