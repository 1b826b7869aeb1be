"""The container image the Docker tests run: busybox on an empty root, made here, no registry.

The image is a ``docker save`` archive built in memory (one layer holding ``/bin/busybox`` from
Debian's ``busybox-static`` and its applet links, plus the image config) and loaded with
``POST /images/load``. Its id is a hash of that content, so building it again gives the same
image; a label carries ``VERSION`` so that a changed recipe replaces an older image of that name.
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
VERSION = "3"  # raise when the recipe below changes
VERSION_LABEL = "corral.test-image-version"
LOCK = Path("/tmp/corral-test-image.lock")
APPLETS = (
    "sh ls cat echo tar gzip sleep true false mkdir touch wc httpd env id head dd seq tr printf "
    "hostname rm test kill grep mkfifo"
).split()
# What busybox needs to name users: `id` and `User: nobody` read these.
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
# Files in the layer carry this time, so the same recipe always gives the same bytes.
EPOCH = 946684800


def _add(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = EPOCH
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _rootfs() -> bytes:
    """The image's only layer, as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "etc", "tmp", "root", "mnt"):
            mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(_add(directory, tarfile.DIRTYPE, mode=mode))
        data = BUSYBOX.read_bytes()
        info = _add("bin/busybox", tarfile.REGTYPE, mode=0o755, size=len(data))
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            link = _add(f"bin/{applet}", tarfile.SYMTYPE, linkname="busybox", mode=0o777)
            tar.addfile(link)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            body = text.encode()
            info = _add(name, tarfile.REGTYPE, mode=0o644, size=len(body))
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def image_archive(name: str) -> bytes:
    """A ``docker save`` archive of the test image, tagged ``name``."""
    layer = _rootfs()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _arch(),
        "os": "linux",
        "created": "2000-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["echo", "image default command"],
            "Labels": {VERSION_LABEL: VERSION},
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
            info = _add(member, tarfile.REGTYPE, mode=0o644, size=len(body))
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


async def _current(docker: aiodocker.Docker, name: str) -> bool:
    """Whether ``name`` exists and was built from this recipe."""
    try:
        info = await docker.images.inspect(name)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    labels = (info.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(VERSION_LABEL) == VERSION)


async def _ensure(name: str, socket: str) -> None:
    async with aiodocker.Docker(url=socket) as docker:
        if not await _current(docker, name):
            await docker.images.import_image(io.BytesIO(image_archive(name)))


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
    with _exclusive():
        asyncio.run(_ensure(name, socket))
    return name
