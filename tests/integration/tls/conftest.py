"""Fixtures for the TLS tests: a PKI made at test time, `taskgate serve` with TLS, and
`taskgate gateway`'s configuration from its flags."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from taskgate.gateway.cli import add_arguments, gateway_config
from taskgate.gateway.standalone import StandaloneConfig
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


#: The name serve's certificate carries in the gateway tests (what a Kubernetes Service's DNS
#: name would be).
UPSTREAM_NAME = "taskgate.kubeflow.svc"


def kfp_gateway_over_tls(pki: Pki, upstream: str) -> StandaloneConfig:
    """`taskgate gateway --preset kfp` on HTTPS, trusting `pki`'s CA for a TLS `upstream` named
    UPSTREAM_NAME: the flags a Kubeflow deployment would use."""
    files = pki.server_files(name="gateway")
    return config_from_flags(
        "--upstream", upstream,
        "--upstream-tls",
        "--upstream-ca", str(pki.ca_file),
        "--upstream-server-name", UPSTREAM_NAME,
        "--preset", "kfp",
        "--tls-cert", str(files.cert),
        "--tls-key", str(files.key),
    )  # fmt: skip


def config_from_flags(*flags: str) -> StandaloneConfig:
    """`taskgate gateway`'s configuration from its real command-line flags (no environment),
    on 127.0.0.1 port 0."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, {})
    return gateway_config(parser.parse_args(["--http-address", "127.0.0.1:0", *flags]))
