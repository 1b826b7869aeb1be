"""The container images the Docker tests run, made here from the host's files, no registry.

The test image is busybox on an empty root; the MPI image adds the host's Open MPI
(``tests/support/mpi_image.py``). Each is a ``docker save`` archive built in memory (one layer,
plus the image config) and loaded with ``POST /images/load``. Its id is a hash of that content,
so building it again gives the same image; a label carries the recipe's version (the test
image's ``VERSION``, the MPI image's layer hash) so that a changed recipe replaces an older image
of that name.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiodocker

TEST_IMAGE = "corral-test/busybox:latest"
BUSYBOX = Path("/bin/busybox")
VERSION = "4"  # raise when the recipe below changes
VERSION_LABEL = "corral.test-image-version"
LOCK = Path("/tmp/corral-test-image.lock")
APPLETS = (
    "sh ls cat echo tar gzip sleep true false mkdir touch wc httpd env id head dd seq tr printf "
    "hostname rm test kill grep mkfifo tty stty"
).split()
# What busybox needs to name users: `id` and `User: nobody` read these.
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
# Files in the layer carry this time, so the same recipe always gives the same bytes.
EPOCH = 946684800


def tar_entry(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = EPOCH
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def add_busybox(tar: tarfile.TarFile) -> None:
    """The test image's files: the top directories, busybox and its applets, users."""
    for directory in ("bin", "etc", "tmp", "root", "mnt"):
        mode = 0o1777 if directory == "tmp" else 0o755
        tar.addfile(tar_entry(directory, tarfile.DIRTYPE, mode=mode))
    data = BUSYBOX.read_bytes()
    info = tar_entry("bin/busybox", tarfile.REGTYPE, mode=0o755, size=len(data))
    tar.addfile(info, io.BytesIO(data))
    for applet in APPLETS:
        link = tar_entry(f"bin/{applet}", tarfile.SYMTYPE, linkname="busybox", mode=0o777)
        tar.addfile(link)
    for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        body = text.encode()
        info = tar_entry(name, tarfile.REGTYPE, mode=0o644, size=len(body))
        tar.addfile(info, io.BytesIO(body))


def _rootfs() -> bytes:
    """The test image's only layer, as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_busybox(tar)
    return buf.getvalue()


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def image_archive(
    name: str, layer: bytes | None = None, version: str = VERSION, path: str = "/bin"
) -> bytes:
    """A ``docker save`` archive of an image of one ``layer`` (the test image's by default),
    tagged ``name``, its version label ``version``, its ``PATH`` ``path``."""
    layer = _rootfs() if layer is None else layer
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _arch(),
        "os": "linux",
        "created": "2000-01-01T00:00:00Z",
        "config": {
            "Env": [f"PATH={path}"],
            "Cmd": ["echo", "image default command"],
            "Labels": {VERSION_LABEL: version},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2000-01-01T00:00:00Z", "comment": "corral test image"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, body in (
            (config_name, config_bytes),
            (layer_name, layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tar_entry(member, tarfile.REGTYPE, mode=0o644, size=len(body))
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


async def _current(docker: aiodocker.Docker, name: str, version: str) -> bool:
    """Whether ``name`` exists and was built from the recipe ``version``."""
    try:
        info = await docker.images.inspect(name)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    labels = (info.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(VERSION_LABEL) == version)


async def _ensure(name: str, socket: str, layer: bytes | None, version: str, path: str) -> None:
    async with aiodocker.Docker(url=socket) as docker:
        if not await _current(docker, name, version):
            archive = image_archive(name, layer, version, path)
            await docker.images.import_image(io.BytesIO(archive))


@contextmanager
def _exclusive() -> Iterator[None]:
    """Hold a lock file, so two test processes do not build at the same time."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_test_image(name: str = TEST_IMAGE, socket: str = "unix:///var/run/docker.sock") -> str:
    """Build the test image ``name`` unless it is there already; answer its name.

    Call it outside a running event loop (it runs its own).
    """
    if not BUSYBOX.is_file():
        raise RuntimeError(f"{BUSYBOX} is missing: install busybox-static")
    return load_image(name, socket)


def load_image(
    name: str, socket: str, layer: bytes | None = None, version: str = VERSION, path: str = "/bin"
) -> str:
    """Load the image of ``layer`` (the test image's by default) as ``name`` unless the image
    of that name has ``version`` already; answer its name. Outside a running event loop."""
    with _exclusive():
        asyncio.run(_ensure(name, socket, layer, version, path))
    return name
