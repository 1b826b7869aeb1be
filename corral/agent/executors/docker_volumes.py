"""Volumes pinned to the paths that were checked.

Checking a host path and then handing Docker that path races: a task with write access under an
allowed root can swap a checked directory for a symbolic link to ``/etc`` before Docker mounts
it. So each checked (resolved) path is opened without following links, one component at a time
(``O_PATH | O_NOFOLLOW``), and the very file or directory opened is bind-mounted on a staging
path that only the agent can reach; Docker mounts the staging path, and the staging mount is
detached once the container has started (the container keeps its own copy of the mount).

An agent that may not mount (not root) hands Docker the resolved path instead: the check still
holds at that instant, but the race stays open; the log says so once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from corral.agent.executors.base import LaunchError

log = logging.getLogger(__name__)

_MS_BIND = 4096
_MS_REC = 16384  # submounts come along, as in Docker's own (recursive) bind
_MNT_DETACH = 2
_AT_THE_ROOT = os.O_PATH | os.O_DIRECTORY
_NOT_PERMITTED = (errno.EPERM, errno.EACCES, errno.EROFS)
_warned = False


def open_checked(real: str, index: int) -> int:
    """A file descriptor (``O_PATH``) of ``real``, an absolute path without links, opened one
    component at a time without following any; ``LaunchError`` if a part of it is missing or
    has become a link since it was resolved."""
    fd = os.open("/", _AT_THE_ROOT)
    for part in [p for p in real.split("/") if p]:
        try:
            following = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            raise LaunchError(f"volumes[{index}].host_path does not exist") from None
        except OSError as exc:
            raise LaunchError(
                f"volumes[{index}].host_path cannot be opened: {os.strerror(exc.errno or 0)}"
            ) from None
        finally:
            os.close(fd)
        fd = following
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            raise LaunchError(
                f"volumes[{index}].host_path changed while it was checked: a part of it "
                "became a symbolic link"
            )
    return fd


class StagedVolumes:
    """The host paths to hand Docker for one container's volumes; ``release`` after start."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.sources: list[str] = []  # one per volume, in order
        self._mounted: list[Path] = []

    def pin(self, real: str, index: int) -> None:
        """Add the source of volume ``index``: ``real`` pinned on a mount point, or ``real``
        itself where the agent may not mount."""
        fd = open_checked(real, index)
        try:
            target = self.staging / str(index)
            try:
                self.staging.mkdir(parents=True, exist_ok=True)
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    target.mkdir()
                else:
                    target.touch()
                _mount(f"/proc/self/fd/{fd}", target)
            except OSError as exc:
                if exc.errno not in _NOT_PERMITTED:
                    why = os.strerror(exc.errno or 0)
                    message = f"volumes[{index}].host_path cannot be pinned: {why}"
                    raise LaunchError(message) from None
                _warn_unpinned(exc)
                self.sources.append(real)
                return
            self._mounted.append(target)
            self.sources.append(str(target))
        finally:
            os.close(fd)

    def release(self) -> None:
        """Detach the staging mounts and remove their mount points (never what is under them:
        a mount point still in use is left, not emptied). Safe to call more than once."""
        for target in self._mounted:
            _umount(target)
            with contextlib.suppress(OSError):
                if target.is_dir():
                    target.rmdir()
                else:
                    target.unlink()
        self._mounted = []
        with contextlib.suppress(OSError):
            self.staging.rmdir()


def stage_volumes(real_paths: Sequence[str], staging: Path) -> StagedVolumes:
    """Pin each checked path (resolved, under an allowed root) on a mount point in ``staging``
    (a directory of this task that only the agent writes). ``LaunchError`` names the volume
    that changed or vanished since its check."""
    staged = StagedVolumes(staging)
    release_pins(staging)  # what an agent that died mid-launch left
    try:
        for index, real in enumerate(real_paths):
            staged.pin(real, index)
    except BaseException:
        staged.release()
        raise
    return staged


def _warn_unpinned(exc: OSError) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "volumes are handed to Docker by path, not pinned (%s): a task that can write "
            "under an allowed root could swap a path for a link between check and mount; "
            "run the agent as root to close that",
            os.strerror(exc.errno or 0),
        )


def release_pins(staging: Path) -> None:
    """Detach and remove whatever pins are left in a task's ``staging`` directory (an agent
    that died between pinning and starting the container left them), and the directory."""
    if not staging.is_dir():
        return
    for target in staging.iterdir():
        _umount(target)
        with contextlib.suppress(OSError):
            if target.is_dir():
                target.rmdir()  # empty once detached; a mount point still in use stays
            else:
                target.unlink()
    with contextlib.suppress(OSError):
        staging.rmdir()


_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: Path) -> None:
    # The magic link of the descriptor names the opened file itself, whatever its path is now.
    done = _libc.mount(source.encode(), bytes(target), None, _MS_BIND | _MS_REC, None)
    if done != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _umount(target: Path) -> None:
    _libc.umount2(bytes(target), _MNT_DETACH)  # EINVAL when not mounted: nothing to do
