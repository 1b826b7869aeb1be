"""Status updates the master has not acknowledged yet, kept on disk across agent restarts.

An append-only file of JSON lines: ``{"update": {...}}`` for each update, ``{"ack": N}`` when the
master acknowledged every update up to N. It is rewritten small once most of it is acked.
Sequence numbers never repeat, even across restarts and rewrites.

A line is written whole or not at all: a write the disk refuses (full) is cut back off, so no torn
line can swallow the next one. The update is then kept in memory (and still sent); the whole
journal is written again at the next chance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from corral.spec.protocol import StatusUpdate

log = logging.getLogger(__name__)

_COMPACT_AFTER = 1000  # acked lines before the file is rewritten


class Journal:
    """The agent's outbox of status updates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: dict[int, StatusUpdate] = {}
        self._acked = 0
        self._last = 0
        self._dead_lines = 0
        self._behind = False  # a write failed: the file lacks something memory holds
        if path.exists():
            self._load()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size  # kept as we append: no stat per line

    def _load(self) -> None:
        text = self.path.read_text()
        if text and not text.endswith("\n"):
            # A crash tore the last line: drop it, or the next append would be glued to it.
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text)
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its update was never sent either
            if "ack" in entry:
                self._ack_in_memory(int(entry["ack"]))
            elif "update" in entry:
                update = StatusUpdate.model_validate(entry["update"])
                self._last = max(self._last, update.seq)
                if update.seq > self._acked:
                    self._pending[update.seq] = update

    def _write(self, text: str) -> None:
        """Append one line (``text``, a JSON object), whole or not at all."""
        if self._behind and not self._rewrite():
            return
        line = (text + "\n").encode()
        try:
            written = 0
            while written < len(line):  # a short write is retried; a refused one raises
                written += os.write(self._fd, line[written:])
        except OSError as e:
            log.warning("journal write failed (%s); keeping updates in memory", e.strerror)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self._behind = True
            return
        self._size += len(line)

    def next_seq(self) -> int:
        """The sequence number of the next update."""
        return max(self._last, self._acked) + 1

    def append(self, update: StatusUpdate) -> None:
        """Keep an update until it is acknowledged. Written before it is sent."""
        self._write(f'{{"update":{update.model_dump_json()}}}')
        self._pending[update.seq] = update
        self._last = max(self._last, update.seq)

    def _ack_in_memory(self, seq: int) -> int:
        self._acked = max(self._acked, seq)
        done = [s for s in self._pending if s <= seq]
        for s in done:
            del self._pending[s]
        return len(done)

    def ack(self, seq: int) -> None:
        """The master applied every update up to ``seq``."""
        if seq <= self._acked:
            return
        self._dead_lines += self._ack_in_memory(seq) + 1
        self._write(f'{{"ack":{seq}}}')
        if self._dead_lines > _COMPACT_AFTER:
            self._rewrite()

    def _rewrite(self) -> bool:
        """Write the journal anew from memory (small: the acked part goes). False if the disk
        refused; the old file then stays as it was."""
        tmp = self.path.with_suffix(".tmp")
        # Every used seq is either acked or still pending, so this keeps seqs from repeating.
        lines = [json.dumps({"ack": self._acked})]
        lines += [json.dumps({"update": u.model_dump(mode="json")}) for u in self.unacked()]
        try:
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._dead_lines = 0
        self._behind = False
        return True

    def unacked(self) -> list[StatusUpdate]:
        """Updates not yet acknowledged, oldest first."""
        return [self._pending[s] for s in sorted(self._pending)]

    def unacked_after(self, seq: int) -> list[StatusUpdate]:
        """Updates not yet acknowledged whose seq is above ``seq``, oldest first."""
        return [u for u in self.unacked() if u.seq > seq]

    @property
    def acked(self) -> int:
        """The highest seq the master acknowledged (every update up to it)."""
        return self._acked

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)
