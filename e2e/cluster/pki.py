"""Certificates and keys of the local cluster, made with ``cryptography``.

One CA signs everything: the API server's serving certificate, the client
certificates of the admin, the controller manager, the scheduler and the API
server's kubelet client, and the process node's serving certificate. The
service-account signing key is a separate RSA key pair. Files are written once
per state directory and reused, so a kubeconfig stays valid across restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)

API_SERVER_SANS = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "127.0.0.1",
    "10.96.0.1",
]

# name -> (common name, organizations, client?, server SANs)
CLIENTS: dict[str, tuple[str, list[str]]] = {
    "admin": ("kubesweep-admin", ["system:masters"]),
    "controller-manager": ("system:kube-controller-manager", []),
    "scheduler": ("system:kube-scheduler", []),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ["system:masters"]),
}


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sans(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
    orgs: list[str],
    server_sans: list[str] | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server_sans else [ExtendedKeyUsageOID.CLIENT_AUTH]
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_sans:
        b = b.add_extension(_sans(server_sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only; a CA's key also signs certificates and revocation lists."""
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=False,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def ensure_pki(pki: Path, node_names: list[str] | None = None) -> None:
    """Create any missing file under ``pki``; existing files are kept."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key_path = pki / "ca.crt", pki / "ca.key"
    if not ca_crt.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        name = _name("kubesweep-local-ca")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage(signs_certificates=True),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(ca_key_path, ca_key)
        ca_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    ca_key = _load_key(ca_key_path)

    wanted: dict[str, tuple[str, list[str], list[str] | None]] = {
        "apiserver": ("kube-apiserver", [], API_SERVER_SANS),
        **{n: (cn, orgs, None) for n, (cn, orgs) in CLIENTS.items()},
    }
    for node in node_names or []:
        wanted[f"node-{node}"] = (f"system:node:{node}", [], ["127.0.0.1", "localhost", node])
    for stem, (cn, orgs, sans) in wanted.items():
        crt, key = pki / f"{stem}.crt", pki / f"{stem}.key"
        if crt.exists() and key.exists():
            continue
        cert, k = _issue(ca_cert, ca_key, cn, orgs, sans)
        _write_key(key, k)
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
    if not sa_key.exists():
        rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(sa_key, rk)
        sa_pub.write_bytes(
            rk.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str = "admin") -> str:
    """A kubeconfig document (YAML text) with absolute file references."""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: kubesweep-local\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {ca}\n"
        "users:\n"
        f"- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        "contexts:\n"
        f"- name: kubesweep-local\n  context:\n    cluster: kubesweep-local\n    user: {user}\n"
        "current-context: kubesweep-local\n"
    )


def ensure_cert(
    pki: Path, stem: str, cn: str, orgs: list[str], server_sans: list[str] | None = None
) -> tuple[Path, Path]:
    """One more certificate signed by the cluster's CA (kept once made); its (crt, key).

    For components with identities or addresses that ``ensure_pki`` does not know,
    such as a real node's kubelet (client and serving, at the node's address).
    """
    crt, key = pki / f"{stem}.crt", pki / f"{stem}.key"
    if not (crt.exists() and key.exists()):
        ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
        cert, k = _issue(ca_cert, _load_key(pki / "ca.key"), cn, orgs, server_sans)
        _write_key(key, k)
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key
