"""Files: we only ever touch regular files we created or that already hold a mesh.

Each case drives the real `mesh` command (exit codes) or `Mesh` on a real path and
asserts on the file system afterwards: modes, what exists, what was left untouched.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_core import Mesh
from mesh_core.errors import DatabasePermission, DatabaseUnusable, NotAMeshDatabase

ROOT = os.geteuid() == 0


def _mesh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _assert_refused_untouched(path: Path) -> None:
    before = os.stat(path)
    result = _mesh("--db", str(path), "agents")
    after = os.stat(path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr and "regular file" in result.stderr
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)
    assert (after.st_uid, after.st_gid, after.st_rdev) == (
        before.st_uid,
        before.st_gid,
        before.st_rdev,
    )
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.skipif(not ROOT, reason="os.mknod of a device node needs root")
def test_a_character_device_is_refused_with_exit_3_and_never_chmod_ed(tmp_path: Path) -> None:
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    os.chmod(device, 0o666)
    _assert_refused_untouched(device)


def test_a_fifo_is_refused_with_exit_3_and_left_untouched(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o644)
    os.chmod(fifo, 0o644)
    _assert_refused_untouched(fifo)


def test_a_socket_is_refused_with_exit_3_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chmod(path, 0o755)
        _assert_refused_untouched(path)
    finally:
        server.close()


def test_a_symlink_to_a_fifo_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "real" / "pipe"
    fifo.parent.mkdir()
    os.mkfifo(fifo, 0o644)
    link = tmp_path / "link.db"
    link.symlink_to(fifo)
    result = _mesh("--db", str(link), "agents")
    assert result.returncode == 3 and "FIFO" in result.stderr
    assert stat.S_IMODE(fifo.stat().st_mode) == 0o644


def test_every_folder_created_is_0700_under_umask_zero(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "a" / "b" / "c" / "mesh.db"
    Mesh(path).close()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_dangling_symlink_target_is_created_0600(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "elsewhere" / "real.db"
    target.parent.mkdir(mode=0o700)
    link = tmp_path / "mesh.db"
    link.symlink_to(target)
    with Mesh(link) as mesh:
        # While the mesh is open and has written (not only after a later open tightens it).
        mesh.register("alice", cwd=tmp_path)
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert link.is_symlink()


def test_the_file_is_0600_from_its_first_byte(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "m" / "mesh.db"
    with Mesh(path) as mesh:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        mesh.register("alice", cwd=tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_folder_others_can_write_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(DatabasePermission) as info:
        Mesh(folder / "mesh.db")
    assert info.value.exit_code == 3
    assert "replace" in str(info.value) and f"chmod go-w {folder}" in str(info.value)
    assert list(folder.iterdir()) == []  # nothing created in it
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777


def test_a_sticky_world_writable_folder_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    os.chmod(folder, 0o1777)  # like /tmp: others cannot replace our files
    Mesh(folder / "mesh.db").close()
    assert stat.S_IMODE((folder / "mesh.db").stat().st_mode) == 0o600


@pytest.mark.skipif(not ROOT, reason="chown to another user needs root")
def test_a_default_folder_owned_by_another_user_mode_0777_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / ".agent-mesh"
    folder.mkdir(parents=True)
    os.chown(folder, 4242, 4242)
    os.chmod(folder, 0o777)
    env = {**os.environ, "HOME": str(home)}
    env.pop("AGENT_MESH_DB", None)
    result = _mesh("agents", env=env)
    assert result.returncode == 3, result.stderr
    assert "replace" in result.stderr and f"chown {os.getuid()} {folder}" in result.stderr
    assert list(folder.iterdir()) == []
    info = folder.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (4242, 0o777)


def _foreign_wal_copy(tmp_path: Path) -> Path:
    """A copy of another app's WAL-mode database taken while it was open: its -wal, no -shm."""
    source = tmp_path / "live" / "app.db"
    source.parent.mkdir()
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE bookmarks (id INTEGER PRIMARY KEY, url TEXT)")
    conn.commit()
    conn.execute("INSERT INTO bookmarks (url) VALUES ('https://example.org')")
    conn.commit()
    copy = tmp_path / "copy" / "app.db"
    copy.parent.mkdir(mode=0o700)
    shutil.copy(source, copy)
    shutil.copy(f"{source}-wal", f"{copy}-wal")
    conn.close()
    return copy


def test_probing_a_foreign_wal_database_without_its_shm_writes_nothing(tmp_path: Path) -> None:
    copy = _foreign_wal_copy(tmp_path)
    before = {p.name: p.read_bytes() for p in copy.parent.iterdir()}
    assert sorted(before) == ["app.db", "app.db-wal"]
    with pytest.raises(NotAMeshDatabase):
        Mesh(copy)
    assert {p.name: p.read_bytes() for p in copy.parent.iterdir()} == before


def test_a_refused_file_is_a_database_unusable_error(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DatabaseUnusable):
        Mesh(fifo)
