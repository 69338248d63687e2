"""Federation PKI: one CA per federation, one certificate per party, made with ``cryptography``.

Theory of operation
-------------------
A federation has one certificate authority (ECDSA P-256, self-signed, ``pathlen=0``). Each
party gets a leaf certificate signed by it whose subject alternative names carry:

- the party id as a URI ``fedcore://<federation>/<party_id>`` -- the identity the transport
  binds every received message to (``party_id_from_cert``);
- the party id as a DNS name, so a client can verify a server by its id whatever address it
  dials (gRPC's ``ssl_target_name_override``);
- every host the party is reached at, as an IP address or DNS name.

A CA file (``ca.pem``) may hold more than one CA certificate: during a CA rotation every party
trusts a bundle of the new and the old CA, so certificates of either are accepted until the
old CA is dropped (``load_ca_bundle``, ``verify_party_cert``; gRPC and Python's ``ssl`` take
the same PEM bundle as their roots). A rotated CA carries a label in its common name so that
two CAs of one federation never share a subject name.

Leaf keys are ECDSA P-256 (accepted by gRPC's BoringSSL and Python's OpenSSL alike) and are
written unencrypted in PKCS#8 with mode 0600 from the moment the file is created
(``write_private``). Private keys leave this module as ``Secret``s: their PEM bytes come out
only through ``reveal(ACCESS)``, at the call that hands them to gRPC, ``ssl`` or
``cryptography``. Nothing here logs or formats key material.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedcore.crypto.secret import ACCESS, Secret
from fedcore.errors import AuthError

URI_SCHEME = "fedcore://"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CLOCK_SKEW = dt.timedelta(minutes=5)

__all__ = [
    "cert_info",
    "load_ca_bundle",
    "make_ca",
    "make_party_cert",
    "party_hosts",
    "party_id_from_cert",
    "party_identity",
    "verify_party_cert",
    "write_private",
]


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"bad {kind} {value!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter"
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey, label: str) -> Secret:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Secret(pem, label)


def _name(common_name: str, federation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"fedcore federation {federation}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(federation: str, *, valid_days: int = 3650, label: str | None = None) -> tuple[bytes, Secret]:
    """Create a federation CA.

    Args:
        federation: the federation name (goes into the CA's subject).
        valid_days: validity period.
        label: appended to the common name (``fedcore <federation> CA <label>``), so that a
            rotated CA's subject differs from the CA it replaces.

    Returns:
        (certificate PEM, private key): the key is a ``Secret`` holding its PKCS#8 PEM.
    """
    _check_name("federation name", federation)
    if label is not None:
        _check_name("CA label", label)
    key = _new_key()
    name = _name(f"fedcore {federation} CA" + (f" {label}" if label else ""), federation)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key, "CA private key")


def _host_names(party_id: str, federation: str, hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(f"{URI_SCHEME}{federation}/{party_id}"),
        x509.DNSName(party_id),
    ]
    seen = {party_id}
    for host in hosts:
        if host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_party_cert(
    ca_cert_pem: bytes,
    ca_key: Secret,
    party_id: str,
    federation: str,
    hosts: list[str],
    *,
    valid_days: int = 825,
) -> tuple[bytes, Secret]:
    """Issue a party certificate signed by the federation CA.

    Args:
        ca_cert_pem: the CA certificate.
        ca_key: the CA private key (PEM in a ``Secret``, as ``make_ca`` returns it).
        party_id: the party id, carried as URI SAN ``fedcore://<federation>/<party_id>``
            and as DNS SAN ``<party_id>``.
        federation: the federation name.
        hosts: addresses the party is dialed at (IP addresses or DNS names).
        valid_days: validity period.

    Returns:
        (certificate PEM, private key): the key is a ``Secret`` holding its PKCS#8 PEM.

    Raises:
        TypeError: ``ca_key`` is not a ``Secret``.
        ValueError: the CA key is not an ECDSA key.
    """
    _check_name("party id", party_id)
    _check_name("federation name", federation)
    if not isinstance(ca_key, Secret):
        raise TypeError(f"make_party_cert takes the CA key as a Secret, got {type(ca_key).__name__}")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    signer = serialization.load_pem_private_key(ca_key.reveal(ACCESS), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an ECDSA key made by make_ca")
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(party_id, federation))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(_host_names(party_id, federation, hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key, f"{party_id} private key")


def _load(cert_pem: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(cert_pem, x509.Certificate):
        return cert_pem
    try:
        if cert_pem.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(cert_pem)
        return x509.load_der_x509_certificate(cert_pem)
    except ValueError as exc:
        raise AuthError(f"not a readable X.509 certificate ({exc})") from None


def party_identity(cert_pem: bytes | x509.Certificate) -> tuple[str, str]:
    """Return (federation, party id) from the certificate's ``fedcore://`` URI SAN.

    Raises:
        AuthError: the certificate carries no, or more than one, fedcore identity.
    """
    cert = _load(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise AuthError("certificate has no subject alternative names, so no fedcore party id") from None
    found = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(URI_SCHEME)]
    if len(found) != 1:
        raise AuthError(
            f"certificate must carry exactly one {URI_SCHEME}<federation>/<party> URI SAN, found {len(found)}"
        )
    federation, _, party = found[0][len(URI_SCHEME) :].partition("/")
    if not _NAME.match(federation) or not _NAME.match(party):
        raise AuthError(f"certificate URI SAN {found[0]!r} is not {URI_SCHEME}<federation>/<party>")
    return federation, party


def party_id_from_cert(cert_pem: bytes | x509.Certificate) -> str:
    """Return the party id a certificate carries (PEM or DER).

    Raises:
        AuthError: unreadable certificate, or no single fedcore identity in it.
    """
    return party_identity(cert_pem)[1]


def load_ca_bundle(ca_pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a CA file: one CA, or a bundle of several during a CA rotation.

    Raises:
        AuthError: the file holds no readable certificate.
    """
    if not ca_pem.lstrip().startswith(b"-----"):
        return [_load(ca_pem)]  # a single DER certificate
    try:
        return x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise AuthError(f"the CA file is not a readable PEM certificate bundle ({exc})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issuing_ca(cert: x509.Certificate, cas: list[x509.Certificate]) -> x509.Certificate | None:
    for ca in cas:
        if not _is_ca(ca):
            continue  # a party certificate pasted into ca.pem is no trust anchor
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def _check_validity(what: str, cert: x509.Certificate, now: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AuthError(
            f"{what} {cert.subject.rfc4514_string()} is valid only from "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}"
        )


def verify_party_cert(cert_pem: bytes, ca_cert_pem: bytes, *, now: dt.datetime | None = None) -> str:
    """Check that ``cert_pem`` was issued by a CA of ``ca_cert_pem`` and is valid now; return its party id.

    ``ca_cert_pem`` may be a bundle of several CA certificates (a CA rotation): the certificate
    is accepted when any CA in it issued the certificate and that CA is valid now.

    Raises:
        AuthError: issued by none of the CAs, expired or not yet valid (it or its CA), or
            without a party id.
    """
    cert = _load(cert_pem)
    cas = load_ca_bundle(ca_cert_pem)
    ca = _issuing_ca(cert, cas)
    if ca is None:
        names = "; ".join(c.subject.rfc4514_string() for c in cas if _is_ca(c)) or "(none: no CA certificate)"
        raise AuthError(
            f"certificate of {cert.subject.rfc4514_string()} was not issued by the federation CA {names}"
        )
    now = now or dt.datetime.now(dt.UTC)
    _check_validity("the federation CA", ca, now)
    _check_validity("certificate of", cert, now)
    return party_id_from_cert(cert)


def party_hosts(cert_pem: bytes | x509.Certificate) -> list[str]:
    """The hosts a party certificate names (IP and DNS SANs), without the party id's own DNS name.

    This is the ``hosts`` argument ``make_party_cert`` was given, so a renewal keeps them.
    """
    cert = _load(cert_pem)
    party = party_id_from_cert(cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    hosts: list[str] = []
    for name in san:
        if isinstance(name, x509.IPAddress):
            hosts.append(str(name.value))
        elif isinstance(name, x509.DNSName) and name.value != party:
            hosts.append(name.value)
    return hosts


def cert_info(cert_pem: bytes | x509.Certificate) -> dict[str, Any]:
    """Describe a certificate for operators: subject, issuer, party id, SANs, expiry.

    Returns:
        A JSON-able dict; ``party_id``/``federation`` are None when the certificate has none.
    """
    cert = _load(cert_pem)
    try:
        federation, party = party_identity(cert)
    except AuthError:
        federation, party = None, None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(getattr(n, "value", n)) for n in san]
    except x509.ExtensionNotFound:
        sans = []
    not_after = cert.not_valid_after_utc
    left = not_after - dt.datetime.now(dt.UTC)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "party_id": party,
        "federation": federation,
        "sans": sans,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": left.days,
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def write_private(path: str | os.PathLike[str], secret: Secret) -> None:
    """Write a secret file readable by its owner only (mode 0600 from creation on).

    Raises:
        TypeError: ``secret`` is not a ``Secret`` (wrap any secret bytes, a token too, in one).
    """
    if not isinstance(secret, Secret):
        raise TypeError(f"write_private takes a Secret, got {type(secret).__name__}")
    data = secret.reveal(ACCESS)
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
