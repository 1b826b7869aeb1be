"""Typed Python client of the native API (sync and async); the CLI is built on it.

>>> from corral.client import Client
>>> with Client() as c:          # URL and token from load_config()
...     job = c.job("sweep")
"""

from corral.client.aio import AsyncClient
from corral.client.config import (
    ClientConfig,
    ConfigError,
    data_dir_config_path,
    load_config,
    user_config_path,
    write_config,
)
from corral.client.errors import ApiError, ClientError, UnreachableError, describe_errors
from corral.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "UnreachableError",
    "data_dir_config_path",
    "describe_errors",
    "load_config",
    "user_config_path",
    "write_config",
]
