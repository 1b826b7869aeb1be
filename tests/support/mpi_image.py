"""A container image with Open MPI, for MPI gangs on the Docker driver: the test image's busybox
plus the host's Open MPI (Debian's ``openmpi-bin`` and ``libopenmpi3``), no registry.

The layer holds ``mpirun`` (``orterun``) and ``orted``, ``libmpi`` for the programs the tests
compile with the host's ``mpicc``, Open MPI's and PMIx's component directories, help files and
configuration, and every shared library those need (their ``ldd`` closure), each at the path
it has on the host, with the host's links (``/lib`` and ``/lib64`` into ``/usr`` as on a merged
``/usr``). Its version label is the hash of the layer, so a host whose Open MPI changes builds a
new image, and the same host always the same one; it is built once per test process.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

from tests.support.images import BUSYBOX, add_busybox, load_image, tar_entry

MPI_IMAGE = "corral-test/openmpi:latest"
BINARIES = ("orterun", "orted")
ALIASES = {"mpirun": "orterun", "mpiexec": "orterun"}  # Debian's go through /etc/alternatives
LIBMPI = "libmpi.so.40"
# Beside the libraries: Open MPI's components, PMIx's (Debian builds Open MPI against it).
COMPONENT_DIRS = ("openmpi", "pmix2")
DATA_DIRS = (Path("/usr/share/openmpi"), Path("/etc/openmpi"))
_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")


def _ldd(files: Iterable[Path]) -> set[str]:
    """The shared libraries (and loader) the ELF ``files`` need, as ``ldd`` names them."""
    found: set[str] = set()
    for file in files:
        out = subprocess.run(["ldd", str(file)], capture_output=True, text=True).stdout
        if "not found" in out:
            raise RuntimeError(f"{file} needs a library the host lacks:\n{out}")
        found.update(_LDD_PATH.findall(out))
    return found


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


class _Layer:
    """The layer's entries by path in the image (no leading ``/``), written sorted."""

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.files: dict[str, Path] = {}
        self.links: dict[str, str] = {}

    def add(self, path: str) -> None:
        """Add the host's ``path`` (a file, or a link and what it leads to) at the same path,
        its directory's links resolved."""
        host = Path(os.path.realpath(Path(path).parent)) / Path(path).name
        name = str(host).lstrip("/")
        if name in self.files or name in self.links:
            return
        self._parents(name)
        if host.is_symlink():
            target = os.readlink(host)
            self.links[name] = target
            self.add(str(host.parent / target))
        elif host.is_file():
            self.files[name] = host

    def add_tree(self, root: Path) -> list[Path]:
        """Add every file and link under ``root``; answers its ELF files."""
        elves = []
        for directory, _, names in os.walk(root):
            for file in names:
                path = Path(directory) / file
                self.add(str(path))
                if path.is_file() and not path.is_symlink() and _is_elf(path):
                    elves.append(path)
        return elves

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            add_busybox(tar)
            for top in ("lib", "lib64"):  # a merged /usr: the loader and ldd's paths need them
                if Path("/", top).is_symlink():
                    target = os.readlink(Path("/", top))
                    tar.addfile(tar_entry(top, tarfile.SYMTYPE, linkname=target, mode=0o777))
            for name in sorted(self.dirs - {"bin", "etc", "tmp", "root", "mnt"}):
                tar.addfile(tar_entry(name, tarfile.DIRTYPE, mode=0o755))
            for name, host in sorted(self.files.items()):
                data = host.read_bytes()
                mode = host.stat().st_mode & 0o777
                tar.addfile(
                    tar_entry(name, tarfile.REGTYPE, mode=mode, size=len(data)), io.BytesIO(data)
                )
            for name, target in sorted(self.links.items()):
                tar.addfile(tar_entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777))
            for alias, binary in sorted(ALIASES.items()):
                tar.addfile(
                    tar_entry(f"usr/bin/{alias}", tarfile.SYMTYPE, linkname=binary, mode=0o777)
                )
        return buf.getvalue()


def mpi_layer() -> bytes:
    """The MPI image's only layer, as a tar, from the host's Open MPI."""
    orterun = shutil.which("orterun")
    if orterun is None or not BUSYBOX.is_file():
        raise RuntimeError("the MPI image needs openmpi-bin and busybox-static on the host")
    layer = _Layer()
    elves = [Path(os.path.realpath(shutil.which(b) or b)) for b in BINARIES]
    for binary in elves:
        layer.add(str(binary))
    libdir = Path(os.path.realpath(next(p for p in _ldd(elves) if "libopen-rte" in p))).parent
    elves.append(libdir / LIBMPI)
    layer.add(str(libdir / LIBMPI))
    for component in COMPONENT_DIRS:
        elves += layer.add_tree(libdir / component)
    for data in DATA_DIRS:
        layer.add_tree(data)
    for library in sorted(_ldd(elves)):
        layer.add(library)
    return layer.tar()


@functools.cache
def ensure_mpi_image(socket: str = "unix:///var/run/docker.sock") -> str:
    """Build the MPI image unless an image of the same content is there; answers its name.
    Outside a running event loop."""
    layer = mpi_layer()
    version = hashlib.sha256(layer).hexdigest()[:16]
    return load_image(MPI_IMAGE, socket, layer, version, path="/usr/bin:/bin")
