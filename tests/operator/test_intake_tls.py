"""The intake over HTTPS: the operator serves the certificate that the chart mounts."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.runtime import intake_tls


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubesweep-intake")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_no_certificate_means_plain_http() -> None:
    assert intake_tls(OperatorConfig()) is None


def test_the_certificate_and_key_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--intake-tls-cert-file=/tls/tls.crt"])
    assert "go together" in capsys.readouterr().err


async def test_the_intake_serves_https_that_a_client_trusting_the_ca_accepts(
    tmp_path: Path,
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    config = OperatorConfig(intake_tls_cert_file=str(cert_file), intake_tls_key_file=str(key_file))
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=intake_tls(config))
    await site.start()
    try:
        port = runner.addresses[0][1]
        trusting = ssl.create_default_context(cafile=str(cert_file))

        def fetch(context: ssl.SSLContext) -> str:
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=5, context=context) as reply:
                return str(reply.read().decode())

        assert await asyncio.to_thread(fetch, trusting) == "ok"
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(fetch, ssl.create_default_context())
    finally:
        await runner.cleanup()
