"""Checks of a party's TLS files: the chain to the CA, the key pair, the identity.

``ca.pem`` may be a bundle of several CA certificates (during a CA rotation, the new and the
old CA): the party's certificate must chain to one of them, and every certificate in the
bundle must be a CA certificate.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedcore.crypto import pki
from fedcore.errors import AuthError, ConfigError
from fedcore.party.config import PartyConfig


def verify_tls(config: PartyConfig) -> dict[str, Any]:
    """Check that the certificate chains to the CA, matches the key and names this party.

    Returns:
        ``pki.cert_info`` of the party's certificate (expiry, identity), plus ``trusted_cas``:
        the subjects of the CAs in ``ca.pem`` (two during a CA rotation).

    Raises:
        ConfigError: naming the config file and the ``tls.*`` key at fault.
    """
    file = str(config.path)
    ca_pem, cert_pem = config.tls.ca.read_bytes(), config.tls.cert.read_bytes()
    trusted = _check_ca_bundle(config, ca_pem)
    try:
        party_id = pki.verify_party_cert(cert_pem, ca_pem)
    except AuthError as exc:
        raise ConfigError(f"{config.tls.cert.name}: {exc}", file=file, key="tls.cert") from None
    if party_id != config.party_id:
        raise ConfigError(
            f"{config.tls.cert.name} carries party id {party_id!r} but [party] id is "
            f"{config.party_id!r}: use this party's own certificate",
            file=file,
            key="tls.cert",
        )
    federation = pki.cert_info(cert_pem).get("federation")
    if federation != config.federation:
        raise ConfigError(
            f"{config.tls.cert.name} is for federation {federation!r} but [party] federation is "
            f"{config.federation!r}",
            file=file,
            key="party.federation",
        )
    _check_key_pair(config, cert_pem)
    return {**pki.cert_info(cert_pem), "trusted_cas": trusted}


def _check_ca_bundle(config: PartyConfig, ca_pem: bytes) -> list[str]:
    try:
        cas = pki.load_ca_bundle(ca_pem)
    except AuthError as exc:
        raise ConfigError(f"{config.tls.ca.name}: {exc}", file=str(config.path), key="tls.ca") from None
    subjects = []
    for cert in cas:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ConfigError(
                f"{config.tls.ca.name} holds {cert.subject.rfc4514_string()}, which is not a CA "
                "certificate: ca.pem lists only the federation CA (two during a CA rotation)",
                file=str(config.path),
                key="tls.ca",
            )
        subjects.append(cert.subject.rfc4514_string())
    return subjects


def _check_key_pair(config: PartyConfig, cert_pem: bytes) -> None:
    try:
        key = serialization.load_pem_private_key(config.tls.key.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{config.tls.key.name} is not an unencrypted PEM private key",
            file=str(config.path),
            key="tls.key",
        ) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert_key.public_bytes(
        serialization.Encoding.DER, public
    ):
        raise ConfigError(
            f"{config.tls.key.name} does not match the certificate {config.tls.cert.name}: "
            "use the key that was issued with it",
            file=str(config.path),
            key="tls.key",
        )
