"""Serving the files of a task's sandbox to the master: listings and bounded reads.

The sandbox belongs to the task, which may fill it with anything while the agent (often root)
reads it: symlinks to ``/etc``, FIFOs that block an ``open``, device nodes, directories swapped
for links between a check and a use. So a path is opened one component at a time relative to
the sandbox, never following a link, and only regular files are read. Errors name the file as
the user gave it, never a path of the agent's disk.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from corral.spec.protocol import MAX_READ, SandboxFile

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after, by fstat).
_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


class FileRefused(Exception):
    """The file cannot be served; the message says why, in the user's terms."""


class NotWritten(FileRefused):
    """The file does not exist (yet: a running task may still create it)."""


def _parts(name: str) -> tuple[str, ...]:
    if "\0" in name:
        raise FileRefused("a file name cannot contain a NUL byte")
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise FileRefused(f"no file {name!r}: give a path inside the sandbox")
    return parts


def open_regular(sandbox: Path, name: str) -> int:
    """An open descriptor of the regular file ``name`` (relative to ``sandbox``).

    Raises ``NotWritten`` if it does not exist, ``FileRefused`` if it is anything but a regular
    file reached without a symlink.
    """
    parts = _parts(name)
    try:
        dirfd = os.open(sandbox, _DIR_FLAGS)
    except FileNotFoundError:
        raise NotWritten(f"no file {name!r}") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=dirfd)
            os.close(dirfd)
            dirfd = inner
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dirfd)
    except FileNotFoundError:
        raise NotWritten(f"no file {name!r}") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileRefused(f"{name!r} leads through a symbolic link; not served") from None
        raise FileRefused(f"cannot open {name!r}: {e.strerror}") from None
    finally:
        os.close(dirfd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise FileRefused(f"{name!r} is not a regular file; only regular files are served")
    return fd


def read_chunk(sandbox: Path, name: str, offset: int, length: int) -> tuple[bytes, int]:
    """Up to ``length`` bytes (at most ``MAX_READ``) of ``name`` from ``offset``, and the file's
    size now."""
    fd = open_regular(sandbox, name)
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(length, MAX_READ), offset)
    except OSError as e:
        raise FileRefused(f"cannot read {name!r}: {e.strerror}") from None
    finally:
        os.close(fd)
    return data, size


def list_files(sandbox: Path, limit: int) -> tuple[list[SandboxFile], bool]:
    """The regular files under ``sandbox`` (links not followed), sorted by path, at most
    ``limit``; and whether there were more."""
    found: list[SandboxFile] = []
    for top, dirs, files in os.walk(sandbox):
        dirs.sort()
        for name in sorted(files):
            if len(found) == limit:
                return sorted(found, key=lambda f: f.path), True
            path = Path(top) / name
            try:  # it may vanish while we look
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                rel = str(path.relative_to(sandbox))
                found.append(SandboxFile(path=rel, size=st.st_size, mtime=st.st_mtime))
    return sorted(found, key=lambda f: f.path), False
