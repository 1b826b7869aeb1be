"""A decoder for ``text/event-stream`` (server-sent events), fed one line at a time."""

from __future__ import annotations

from pydantic import ValidationError

from corral.client.errors import ClientError
from corral.spec.views import EventView


class EventDecoder:
    """Collects the fields of one event until its blank line, then yields an ``EventView``.

    Only ``data`` matters: the master puts the whole event, id and type included, in it. ``id``
    and ``event`` lines are read by the spec's rules but not needed; comments (``:``) are
    keep-alives.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> EventView | None:
        """Take one line (without its newline); return the event a blank line completes."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            # The spec strips exactly one space after the colon.
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def _dispatch(self) -> EventView | None:
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        try:
            return EventView.model_validate_json(data)
        except ValidationError as e:
            raise ClientError(f"unreadable event from the master: {e}") from None
