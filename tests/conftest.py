"""Shared test set-up."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse
from yarl import URL


class _CompatResponse(ClientResponse):
    """aiohttp 3.14 (a security release) added a required ``stream_writer`` argument that
    aioresponses 0.7.x does not pass (pnuckowski/aioresponses#289). Its mocked responses are
    already complete, so a writer reporting zero bytes sent is exact."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[misc]
