"""The database's file and folders: only regular files we created or that already hold a
mesh are touched; folders are made 0700 and files 0600 from their first byte, and a
folder others can write is refused (docs/contract.md §2.2).
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

from .config import DEFAULT_DB_PATH
from .errors import (
    DatabasePermission,
    DatabaseUnusable,
    NotAMeshDatabase,
)


def refuse_non_file(path: Path) -> None:
    """Refuse, before anything touches it, a path that names no regular file: a device,
    FIFO, socket or folder (following symlinks) is never chmod-ed nor opened by SQLite."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:  # a parent of it is a file, a loop of links, ...
        raise DatabaseUnusable(path, f"{exc.strerror}; use another --db path") from exc
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise NotAMeshDatabase(
            path, f"it is a folder; give a file path such as {path / DEFAULT_DB_PATH.name}"
        )
    kind = (
        "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise NotAMeshDatabase(path, f"it is {kind}, not a regular file; use another --db path")


def _make_folders(folder: Path, path: Path) -> None:
    """Create `folder` and every missing folder above it, each 0700 whatever the umask
    (`mkdir -p`, like Path.mkdir(parents=True), gives the parents the umask's mode)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
        except FileExistsError:
            continue  # another process made it first: leave its mode to _check_folder
        except OSError as exc:
            raise DatabasePermission(path, f"cannot create folder {level} ({exc})") from exc
        os.chmod(level, 0o700)  # the umask may have taken bits away (never added any)


def _check_folder(folder: Path, path: Path) -> None:
    """A folder others can write lets them delete or replace the database (and read the
    messages through a file they planted): refuse it, saying how to fix it. Our default
    folder is simply tightened when it is ours; a folder with the sticky bit (/tmp) only
    lets each user replace their own files."""
    try:
        info = folder.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    ours = info.st_uid == os.getuid()
    if ours and folder == DEFAULT_DB_PATH.expanduser().parent:
        tighten(folder, 0o700)
        mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        fix = (
            f"chmod go-w {folder}"
            if ours
            else f"chown {os.getuid()} {folder} && chmod 700 {folder}"
        )
        raise DatabasePermission(
            path,
            f"its folder {folder} can be written by other users (mode {mode:o}), so they "
            f"could replace the database; run: {fix}",
        )
    if not ours and info.st_uid != 0:
        warnings.warn(
            f"{folder} belongs to another user (uid {info.st_uid}), who can replace "
            f"{path.name} in it; run: chown {os.getuid()} {folder}",
            stacklevel=3,
        )


def _create_private(target: Path, path: Path) -> None:
    """Create the file 0600 before SQLite opens it: SQLite would create it 0644 under the
    umask, and hold messages at that mode until the next open tightened it. A dangling
    symlink's target is created the same way (O_EXCL refuses a link itself)."""
    if os.path.lexists(target) and not target.exists():
        target = Path(os.path.realpath(target))
        _make_folders(target.parent, path)
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise DatabasePermission(path, f"cannot create it ({exc.strerror})") from exc
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
    finally:
        os.close(fd)


def prepare_path(path: Path, create: bool = True) -> None:
    """Create the folders 0700 and the file 0600; tighten a file others could read."""
    folder = path.parent
    if not folder.exists():
        _make_folders(folder, path)
    _check_folder(folder, path)
    if create and not path.exists():
        _create_private(path, path)
    # SQLite gives new -wal/-shm files the db file's mode, but ones another client left
    # (the sqlite3 shell under umask 022) keep theirs, and the WAL holds recent messages.
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        tighten(target, 0o600)


def permission_hint(path: Path) -> str:
    """What to do about a write refused by the OS: a read-only mount, or the mode."""
    try:
        read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return "its file system is mounted read-only; remount it read-write or use another --db"
    return "check the file's owner and mode"


def tighten(target: Path, mode: int) -> None:
    """Messages may hold private data: no one else may read them (docs/contract.md §2.2)."""
    try:
        info = target.stat()
    except OSError:
        return
    if stat.S_IMODE(info.st_mode) & 0o077 == 0:
        return
    if info.st_uid == os.getuid():
        try:
            os.chmod(target, mode)
            return
        except OSError:
            pass
    warnings.warn(
        f"{target} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}); "
        f"run: chmod {mode:o} {target}",
        stacklevel=3,
    )
