"""Fixtures for the TLS tests: a PKI made at test time, and `taskgate serve` with TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from taskgate.server.lifecycle import RunningServer, serving
from taskgate.tls import ServerTLSFiles
from tests.integration.servers import serve_settings
from tests.integration.tls.certs import Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@asynccontextmanager
async def tls_serving(database_url: str, files: ServerTLSFiles) -> AsyncIterator[RunningServer]:
    """`taskgate serve --tls-cert … --tls-key … [--tls-client-ca …]` on ports 0."""
    async with serving(replace(serve_settings(database_url), tls=files)) as running:
        yield running
