"""Typed Python client of the native API (sync and async); the CLI is built on it.

>>> from corral.client import Client
>>> with Client() as c:          # URL and token from load_config()
...     job = c.job("sweep")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corral.client.config import (
    ClientConfig,
    ConfigError,
    data_dir_config_path,
    load_config,
    user_config_path,
    write_config,
)
from corral.client.errors import ApiError, ClientError, UnreachableError, describe_errors

if TYPE_CHECKING:
    from corral.client.aio import AsyncClient
    from corral.client.rows import RowClient
    from corral.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "RowClient",
    "UnreachableError",
    "data_dir_config_path",
    "describe_errors",
    "load_config",
    "user_config_path",
    "write_config",
]


def __getattr__(name: str) -> object:
    # The clients are loaded when first named: the typed ones bring pydantic's models (and the
    # async one httpx), a tenth of a second or more that the errors, the config and the row
    # client are not worth waiting for.
    if name == "Client":
        from corral.client.sync import Client

        return Client
    if name == "AsyncClient":
        from corral.client.aio import AsyncClient

        return AsyncClient
    if name == "RowClient":
        from corral.client.rows import RowClient

        return RowClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
