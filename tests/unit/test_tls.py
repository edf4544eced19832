"""taskgate/tls.py without servers: start-up errors name the flag and the file (exit 2), a
reload that fails keeps the current certificates, and SIGHUP reaches every handler."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from taskgate.command import SignalHandlers
from taskgate.gateway import cli as gateway_cli
from taskgate.server import cli as serve_cli
from taskgate.tls import ServerTLS, ServerTLSFiles, TLSError, UpstreamTLS, load_server_certificates


@pytest.fixture
def files(tmp_path: Path) -> ServerTLSFiles:
    leaf = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(leaf.cert_chain_pems[0].bytes())
    key.write_bytes(leaf.private_key_pem.bytes())
    return ServerTLSFiles(cert, key)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one-line error `taskgate serve` exits 2 with."""
    with pytest.raises(SystemExit) as exited:
        serve_cli.main([*argv, "--database-url", "postgresql://db/x"], env={})
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_start_up_errors_name_the_flag_and_the_file(
    files: ServerTLSFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = str(files.cert), str(files.key)
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\n")
    other_key = tmp_path / "other.key"
    other_key.write_bytes(trustme.CA().issue_cert("x").private_key_pem.bytes())
    encrypted = tmp_path / "encrypted.key"
    private = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
    )
    expected = {
        ("--tls-cert", str(missing), "--tls-key", key): (
            f"--tls-cert {missing}: cannot read: No such file or directory"
        ),
        ("--tls-cert", cert): "--tls-cert and --tls-key go together: give both or neither",
        ("--tls-client-ca", cert): "--tls-client-ca needs --tls-cert and --tls-key",
        ("--tls-cert", str(garbage), "--tls-key", key): (
            f"--tls-cert {garbage}: no PEM certificate in the file"
        ),
        ("--tls-cert", cert, "--tls-key", str(other_key)): (
            f"--tls-key {other_key}: does not match the certificate in --tls-cert {cert}"
        ),
        ("--tls-cert", cert, "--tls-key", str(encrypted)): (
            f"--tls-key {encrypted}: the key is encrypted; give an unencrypted key"
        ),
        ("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(garbage)): (
            f"--tls-client-ca {garbage}: no PEM certificate in the file"
        ),
    }
    for argv, message in expected.items():
        line = usage_error(capsys, *argv)
        assert line == f"taskgate serve: error: {message}", argv
        assert "PRIVATE KEY" not in line


def test_tls_flags_read_the_environment(files: ServerTLSFiles) -> None:
    env = {"TASKGATE_TLS_CERT": str(files.cert), "TASKGATE_TLS_KEY": str(files.key)}
    settings = serve_cli.serve_settings(serve_cli.build_parser(env).parse_args([]))
    assert settings.tls == files
    assert serve_cli.serve_settings(serve_cli.build_parser({}).parse_args([])).tls is None


def test_gateway_upstream_tls_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="taskgate gateway")
    gateway_cli.add_arguments(parser, {})
    plain = gateway_cli.gateway_config(parser.parse_args(["--upstream", "h:1"]))
    assert plain.upstream_tls is None
    assert plain.tls is None
    named = gateway_cli.gateway_config(
        parser.parse_args(["--upstream", "h:1", "--upstream-server-name", "api.internal"])
    )
    assert named.upstream_tls == UpstreamTLS(ca=None, server_name="api.internal")
    assert named.upstream_tls.channel_options() == (
        ("grpc.ssl_target_name_override", "api.internal"),
    )
    assert (
        gateway_cli.gateway_config(
            parser.parse_args(["--upstream", "h:1", "--upstream-tls"])
        ).upstream_tls
        == UpstreamTLS()
    )
    missing = tmp_path / "ca.pem"
    with pytest.raises(TLSError, match=f"--upstream-ca {missing}: cannot read"):
        UpstreamTLS(ca=missing).check()


def test_a_failed_reload_keeps_the_current_certificates(
    files: ServerTLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    tls = ServerTLS(files)
    before = tls.certificates
    files.cert.unlink()
    with caplog.at_level(logging.ERROR, logger="taskgate.tls"):
        assert not tls.reload()
    assert tls.certificates == before
    assert caplog.messages == [
        "TLS reload failed, keeping the current certificates: "
        f"--tls-cert {files.cert}: cannot read: No such file or directory"
    ]
    leaf = trustme.CA().issue_cert("127.0.0.1")
    files.cert.write_bytes(leaf.cert_chain_pems[0].bytes())
    files.key.write_bytes(leaf.private_key_pem.bytes())
    assert tls.reload()
    assert tls.certificates == load_server_certificates(files)[0] != before


async def test_sighup_runs_every_handler() -> None:
    seen: list[str] = []
    with SignalHandlers() as signals:
        signals.on(signal.SIGHUP, lambda: seen.append("routes"))
        signals.on(signal.SIGHUP, lambda: seen.append("certificates"))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
    assert seen == ["routes", "certificates"]


async def test_a_signal_blocked_until_handled_is_delivered_then() -> None:
    """How `--workers` keeps a SIGHUP sent while a worker starts: blocked, then handled."""
    seen: list[str] = []
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        # To this thread only: a process-directed SIGHUP could go to another thread (grpc's
        # poller, left by earlier tests) that does not block it, and end the test run.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGHUP)
        with SignalHandlers() as signals:
            signals.on(signal.SIGHUP, lambda: seen.append("reload"))
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    assert seen == ["reload"]
