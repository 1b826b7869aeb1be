"""Bounds on what a spec may hand to a process: no NUL bytes, and sizes that fit the kernel's
and the store's limits.

A NUL cannot be passed in an argv string, an environment variable or a path (``execve`` and
``open`` end the string there, Python refuses it), so a spec that holds one could never start;
it is refused at admission instead. The sizes follow what Kubernetes and Nomad accept in
practice, well under Linux's 128 KiB per argument and 2 MiB for argv and environment together:
a spec is copied into every task of an array, so its size is multiplied by up to 100,000.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

MAX_COMMAND_BYTES = 64 * 1024  # ``command`` (all of argv), ``shell``, an entrypoint, a check
MAX_ARGS = 4096  # arguments in one argv
MAX_ENV_ENTRIES = 256
MAX_ENV_BYTES = 64 * 1024  # names and values of every variable together, in UTF-8
MAX_TEXT_BYTES = 4096  # one short value: a path, a user, a docker parameter, a label
# Every task of a run (an array, a service's instances) stores its own copy of the task: their
# sum is bounded, so one submit cannot add gigabytes to the store.
MAX_RUN_BYTES = 256 * 1024 * 1024
MAX_INSTANCES = 10_000  # tasks of one service (the CLI reads it without loading the models)


_reading_stored: ContextVar[bool] = ContextVar("reading_stored", default=False)


@contextmanager
def reading_stored() -> Iterator[None]:
    """Meanwhile, specs are read back from the store: they were admitted when written, and a
    rule added since must not make them unreadable (a master that cannot start, a job whose
    page fails), so the admission checks of this module let everything pass."""
    token = _reading_stored.set(True)
    try:
        yield
    finally:
        _reading_stored.reset(token)


def admitting() -> bool:
    """True unless specs are being read back from the store (see ``reading_stored``)."""
    return not _reading_stored.get()


def no_nul(value: str) -> str:
    """``value`` as it is; ValueError if it holds a NUL byte."""
    if not admitting():
        return value
    if "\0" in value:
        raise ValueError("must not contain a NUL byte (\\u0000)")
    return value


def short_text(value: str) -> str:
    """``value`` as it is; ValueError if it holds a NUL or is over ``MAX_TEXT_BYTES``."""
    if not admitting():
        return value
    no_nul(value)
    if _size(value) > MAX_TEXT_BYTES:
        raise ValueError(f"is longer than {MAX_TEXT_BYTES} bytes")
    return value


def command_line(value: str) -> str:
    """A shell command line: no NUL, at most ``MAX_COMMAND_BYTES``."""
    if not admitting():
        return value
    no_nul(value)
    if _size(value) > MAX_COMMAND_BYTES:
        raise ValueError(f"is {_size(value)} bytes, over the limit of {MAX_COMMAND_BYTES}")
    return value


def argv(value: Sequence[str]) -> Sequence[str]:
    """An argv: no NUL in any argument, at most ``MAX_ARGS`` arguments and
    ``MAX_COMMAND_BYTES`` in all."""
    if not admitting():
        return value
    if len(value) > MAX_ARGS:
        raise ValueError(f"has {len(value)} arguments, over the limit of {MAX_ARGS}")
    for i, arg in enumerate(value):
        if "\0" in arg:
            raise ValueError(f"argument {i} contains a NUL byte (\\u0000)")
    total = sum(_size(arg) + 1 for arg in value)
    if total > MAX_COMMAND_BYTES:
        raise ValueError(f"is {total} bytes, over the limit of {MAX_COMMAND_BYTES}")
    return value


def environment(value: Mapping[str, str]) -> Mapping[str, str]:
    """Environment variables: no NUL in a name or value, at most ``MAX_ENV_ENTRIES`` of them and
    ``MAX_ENV_BYTES`` in all."""
    if not admitting():
        return value
    if len(value) > MAX_ENV_ENTRIES:
        raise ValueError(f"has {len(value)} variables, over the limit of {MAX_ENV_ENTRIES}")
    for key, item in value.items():
        if "\0" in key:
            raise ValueError(f"the name {key!r} contains a NUL byte (\\u0000)")
        if "\0" in item:
            raise ValueError(f"{key}: the value contains a NUL byte (\\u0000)")
    total = sum(_size(key) + _size(item) + 2 for key, item in value.items())
    if total > MAX_ENV_BYTES:
        raise ValueError(f"is {total} bytes, over the limit of {MAX_ENV_BYTES}")
    return value


def copies_fit(task_bytes: int, copies: int, what: str) -> None:
    """ValueError if ``copies`` copies of a task of ``task_bytes`` exceed ``MAX_RUN_BYTES``;
    ``what`` names the copies ("tasks per run", "instances")."""
    total = task_bytes * copies
    if total > MAX_RUN_BYTES and admitting():
        raise ValueError(
            f"{copies} {what} of {task_bytes} bytes each make {total // 2**20} MiB, over the "
            f"limit of {MAX_RUN_BYTES // 2**20} MiB: make the task smaller (env, command) or "
            "run fewer"
        )


def _size(text: str) -> int:
    # Lone surrogates are refused elsewhere, with their own message; count them, don't fail.
    return len(text.encode("utf-8", "surrogatepass"))
