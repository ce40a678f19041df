"""Generated input for the core API and the CLI: what the rules accept round-trips
exactly; what they refuse raises a MeshError and changes nothing; nothing else escapes.

Each property states the rule independently of the code (the oracle), so a change to
either shows. The CLI properties run real subprocesses: few examples, no deadline.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mesh_core import FixedClock, Mesh, MeshConfig, MeshError
from mesh_core.errors import InvalidMessageId, InvalidName, InvalidPriority, MessageNotFound
from mesh_core.identity import identify

LIMIT = 10_240
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
CONFIG = MeshConfig(rate_limit=10**6)
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, surrogates included (what Python holds after a bad decode).
any_char = st.characters(exclude_categories=[])
near_the_limit = st.builds(
    lambda unit, count, tail: unit * count + tail,
    st.sampled_from(["a", "é", "€", "😀", " "]),
    st.integers(min_value=2_400, max_value=10_300),
    st.text(any_char, max_size=4),
)
contents = st.one_of(
    st.text(any_char), st.text(st.sampled_from(" \t\n\r\x00\u3000")), near_the_limit
)


def acceptable(content: str) -> bool:
    """docs/contract.md §4.3: not empty after trimming, at most 10,240 bytes of UTF-8, no NUL."""
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return bool(content.strip()) and "\x00" not in content and size <= LIMIT


@contextmanager
def fresh_mesh() -> Iterator[tuple[Mesh, str, str]]:
    """A new database per example (hypothesis reruns a body many times)."""
    with tempfile.TemporaryDirectory() as folder:
        mesh = Mesh(
            Path(folder) / "mesh.db", config=CONFIG, clock=FixedClock("2026-11-23T14:00:00.000Z")
        )
        try:
            alice = mesh.register("alice").session_id
            bob = mesh.register("bob").session_id
            yield mesh, alice, bob
        finally:
            mesh.close()


def dump(mesh: Mesh) -> list[str]:
    return list(mesh.connection().iterdump())


@FAST
@given(content=contents)
@example(content="x" * LIMIT)
@example(content="x" * (LIMIT + 1))
@example(content="é" * (LIMIT // 2))
@example(content="a" * (LIMIT - 1) + "é")
def test_content_round_trips_or_is_refused_untouched(content: str) -> None:
    with fresh_mesh() as (mesh, alice, bob):
        before = dump(mesh)
        if acceptable(content):
            sent = mesh.send(alice, "bob", content)
            assert [m.content for m in mesh.inbox(bob)] == [content]
            assert mesh.get(sent.message_id).content == content
        else:
            try:
                mesh.send(alice, "bob", content)
            except MeshError:
                pass
            else:
                raise AssertionError(f"accepted {content!r}")
            assert dump(mesh) == before


ids = st.one_of(
    st.integers(),
    st.integers(min_value=-3, max_value=3),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(any_char, max_size=25),
    st.from_regex(r"\A\s*#?[0-9]{1,22}\s*\Z"),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
)


def well_formed(value: Any) -> int | None:
    """A positive integer that fits SQLite's 64 bits, or such a number written in ASCII
    digits (optionally `#` and spaces around): the id it names, else None."""
    if isinstance(value, str):
        digits = value.strip().lstrip("#")
        value = int(digits) if digits.isascii() and digits.isdigit() else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


@FAST
@given(message_id=ids)
@example(message_id="²")  # str.isdigit() is True, int() raised ValueError
@example(message_id="٣")  # an Arabic-Indic three was taken as message 3
@example(message_id=" #1 ")
def test_message_ids_are_found_not_found_or_refused(message_id: Any) -> None:
    with fresh_mesh() as (mesh, alice, bob):
        first = mesh.send(alice, "bob", "hello")
        before = dump(mesh)
        wanted = well_formed(message_id)
        for call in (mesh.get, mesh.thread, lambda i: mesh.reply(bob, i, "re")):
            try:
                result = call(message_id)
            except InvalidMessageId:
                assert wanted is None
            except MessageNotFound:
                assert wanted is not None and wanted != first.message_id
            else:
                assert wanted == first.message_id, result
        if wanted != first.message_id:
            assert dump(mesh) == before


def must_refuse(name: str) -> bool:
    """Controls, separators, lone surrogates and bidi controls never make a name."""
    return any(
        unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI_CONTROLS
        for char in name.strip()
    )


@FAST
@given(name=st.text(any_char, max_size=140))
@example(name="a\u202eb")
@example(name="n\udcffame")
@example(name="x" * 128)
def test_names_register_exactly_or_are_refused(name: str) -> None:
    with fresh_mesh() as (mesh, alice, _):
        before = dump(mesh)
        try:
            agent = mesh.register(name)
        except InvalidName:
            assert dump(mesh) == before
            return
        assert not must_refuse(name), f"accepted {name!r}"
        # A blank name is inferred (AGENT_MESH_NAME, else the folder), not taken as given.
        assert agent.agent_name == (name.strip() or identify(None, None).name)
        if agent.agent_name not in ("alice", "bob"):
            assert mesh.send(alice, agent.agent_name, "hi").recipient_session_id == agent.session_id


@FAST
@given(target=st.text(any_char, max_size=40), priority=st.text(any_char, max_size=10))
@example(target="BOB", priority="URGENT")
@example(target="b\udcffob", priority="normal")
@example(target="bob", priority=" low ")
def test_targets_and_priorities_deliver_or_refuse_untouched(target: str, priority: str) -> None:
    with fresh_mesh() as (mesh, alice, bob):
        before = dump(mesh)
        reaches_bob = target.strip().lower() == "bob" or target == bob
        good_priority = priority.strip().lower() in ("low", "normal", "high", "urgent")
        try:
            sent = mesh.send(alice, target, "hi", priority=priority)
        except InvalidPriority:
            assert not good_priority
        except MeshError:
            assert not (reaches_bob and good_priority)
        else:
            assert reaches_bob and good_priority
            assert sent.recipient_session_id == bob
            assert sent.priority == priority.strip().lower()
            return
        assert dump(mesh) == before


# -- the command line ------------------------------------------------------------------


def cli(db: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, AGENT_MESH_NAME="alice", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "mesh_core", *args, "--db", str(db)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def stored(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT content FROM agent_messages ORDER BY 1")]


@contextmanager
def cli_db() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "cli.db"
        with Mesh(db) as mesh:
            mesh.register("alice", kind="cli")
            mesh.register("bob")
        yield db


@SLOW
@given(
    raw=st.one_of(st.binary(max_size=40), st.text(any_char, max_size=40), near_the_limit).map(
        lambda value: value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    )
)
@example(raw="é".encode() * (LIMIT // 2) + b"\n")
@example(raw=b"ab\xffcd")
def test_cli_stdin_is_sent_exactly_or_refused(raw: bytes) -> None:
    """`mesh send bob -`: strict UTF-8, trailing newlines dropped, then the rules."""
    with cli_db() as db:
        try:
            text: str | None = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            text = None
        result = cli(db, "send", "bob", "-", stdin=raw)
        err = result.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err
        if text is not None and acceptable(text):
            assert result.returncode == 0, err
            assert stored(db) == [text]
        else:
            assert result.returncode == 1, err
            assert err.startswith("mesh: ") and err.count("\n") == 1, err
            assert stored(db) == []


@SLOW
@given(
    arg=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=25)
)
def test_cli_show_any_argument_gives_a_clear_answer(arg: str) -> None:
    """`mesh show ARG` exits 0 (found), 1 (refused or not found) or 2 (usage), never a
    traceback, and never changes a message."""
    with cli_db() as db:
        result = cli(db, "show", arg)
        err = result.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err
        assert result.returncode in (1, 2), err  # the database holds no message at all
        assert stored(db) == []
