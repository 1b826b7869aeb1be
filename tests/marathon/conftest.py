"""The Marathon API in process: the same master fixtures as the native API tests."""

import collections
import collections.abc

from tests.api.conftest import anonymous, api, master, token

__all__ = ["anonymous", "api", "master", "token"]

# marathon 0.13, the newest release of Marathon's Python client, still reads
# collections.Iterable (moved to collections.abc in Python 3.3, removed in 3.10). Give it the
# alias so the client runs unchanged, as it would on the Pythons it was written for.
if not hasattr(collections, "Iterable"):
    setattr(collections, "Iterable", collections.abc.Iterable)  # noqa: B010
