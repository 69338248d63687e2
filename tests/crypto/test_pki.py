"""Federation PKI: identities in certificates, private key files, chains."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pickle
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedcore.crypto import pki
from fedcore.crypto.secret import ACCESS, Secret
from fedcore.errors import AuthError


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, Secret]:
    return pki.make_ca("demo")


def test_party_id_round_trips_through_the_san(ca) -> None:
    cert_pem, key_pem = pki.make_party_cert(*ca, "alice", "demo", ["127.0.0.1", "alice.example.org"])
    assert pki.party_id_from_cert(cert_pem) == "alice"
    assert pki.party_identity(cert_pem) == ("demo", "alice")
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["fedcore://demo/alice"]
    assert san.get_values_for_type(x509.DNSName) == ["alice", "alice.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert key_pem.reveal(ACCESS).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.party_id_from_cert(cert.public_bytes(serialization.Encoding.DER)) == "alice"


def test_cert_info_describes_the_certificate(ca) -> None:
    cert_pem, _ = pki.make_party_cert(*ca, "bob", "demo", ["10.0.0.2"], valid_days=30)
    info = pki.cert_info(cert_pem)
    assert info["party_id"] == "bob" and info["federation"] == "demo"
    assert "CN=bob" in info["subject"] and "CN=fedcore demo CA" in info["issuer"]
    assert 29 <= info["days_left"] <= 30
    assert dt.datetime.fromisoformat(info["not_after"]) > dt.datetime.now(dt.UTC)
    assert "fedcore://demo/bob" in info["sans"] and "10.0.0.2" in info["sans"]
    ca_info = pki.cert_info(ca[0])
    assert ca_info["party_id"] is None and ca_info["days_left"] >= 3649


def test_chain_from_another_ca_is_refused(ca) -> None:
    cert_pem, _ = pki.make_party_cert(*ca, "carol", "demo", [])
    assert pki.verify_party_cert(cert_pem, ca[0]) == "carol"
    other_ca, other_key = pki.make_ca("demo")
    forged, _ = pki.make_party_cert(other_ca, other_key, "carol", "demo", [])
    with pytest.raises(AuthError, match="not issued by the federation CA"):
        pki.verify_party_cert(forged, ca[0])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=900)
    with pytest.raises(AuthError, match="valid only"):
        pki.verify_party_cert(cert_pem, ca[0], now=later)


def test_certificate_without_fedcore_identity_is_refused(ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "alice")])
    now = dt.datetime.now(dt.UTC)
    bare = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("alice")]), critical=False)
        .sign(key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(AuthError, match="exactly one fedcore://"):
        pki.party_id_from_cert(bare)
    with pytest.raises(AuthError, match="not a readable"):
        pki.party_id_from_cert(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("bad", ["", "9lives", "a/b", "x" * 65, "al ice"])
def test_bad_names_are_refused(ca, bad: str) -> None:
    with pytest.raises(ValueError, match="bad party id"):
        pki.make_party_cert(*ca, bad, "demo", [])


def test_private_files_are_0600_from_creation(tmp_path) -> None:
    target = tmp_path / "party.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        pki.write_private(target, Secret(b"secret"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"secret"
    target.chmod(0o644)
    pki.write_private(target, Secret(b"new"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"new"


def test_write_private_refuses_bare_bytes(tmp_path) -> None:
    with pytest.raises(TypeError, match="write_private takes a Secret"):
        pki.write_private(tmp_path / "party.key", b"secret")  # type: ignore[arg-type]
    assert not (tmp_path / "party.key").exists()


@pytest.mark.parametrize("which", ["ca", "party"])
def test_private_keys_come_back_as_secrets(ca, which: str) -> None:
    key = ca[1] if which == "ca" else pki.make_party_cert(*ca, "alice", "demo", [])[1]
    assert isinstance(key, Secret)
    pem = key.reveal(ACCESS)
    body = pem.split(b"\n")[1]  # a line of the base64 key body
    assert body and body.decode() not in repr(key) and body.decode() not in str(key)
    assert "private key" in repr(key) and f"({len(pem)} bytes)" in repr(key)
    with pytest.raises(TypeError, match="no truth value"):
        bool(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="needs the ACCESS token"):
        key.reveal(None)  # type: ignore[arg-type]
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1"


def test_a_ca_key_signs_party_certificates_that_verify_against_its_certificate(ca) -> None:
    ca_cert, ca_key = ca
    cert, _ = pki.make_party_cert(ca_cert, ca_key, "dave", "demo", ["127.0.0.1"])
    assert pki.verify_party_cert(cert, ca_cert) == "dave"
    # the Secret holds the CA's own key: its public half is the one in the CA certificate
    signer = serialization.load_pem_private_key(ca_key.reveal(ACCESS), password=None)
    ca_public = x509.load_pem_x509_certificate(ca_cert).public_key()
    assert signer.public_key() == ca_public
    # and a CA key read back from a file (as the kit keeps it) works the same
    reread = Secret(ca_key.reveal(ACCESS), "CA private key")
    again, _ = pki.make_party_cert(ca_cert, reread, "erin", "demo", [])
    assert pki.verify_party_cert(again, ca_cert) == "erin"


def test_make_party_cert_refuses_a_ca_key_as_bare_bytes(ca) -> None:
    with pytest.raises(TypeError, match="CA key as a Secret"):
        pki.make_party_cert(ca[0], ca[1].reveal(ACCESS), "alice", "demo", [])  # type: ignore[arg-type]


def test_write_private_of_a_key_writes_its_pem_0600(ca, tmp_path) -> None:
    _, key = pki.make_party_cert(*ca, "alice", "demo", [])
    target = tmp_path / "party.key"
    pki.write_private(target, key)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == key.reveal(ACCESS)
    assert isinstance(
        serialization.load_pem_private_key(target.read_bytes(), password=None), ec.EllipticCurvePrivateKey
    )


def test_ca_bundle_accepts_certificates_of_either_ca(ca) -> None:
    new_ca = pki.make_ca("demo", label="rotated-1")
    assert pki.cert_info(new_ca[0])["subject"] != pki.cert_info(ca[0])["subject"]  # labels keep them apart
    bundle = new_ca[0] + ca[0]
    old_cert, _ = pki.make_party_cert(*ca, "alice", "demo", ["127.0.0.1"])
    new_cert, _ = pki.make_party_cert(*new_ca, "bob", "demo", ["127.0.0.1"])
    assert pki.verify_party_cert(old_cert, bundle) == "alice"
    assert pki.verify_party_cert(new_cert, bundle) == "bob"
    assert pki.verify_party_cert(new_cert, ca[0] + new_ca[0]) == "bob"  # order does not matter
    assert len(pki.load_ca_bundle(bundle)) == 2
    with pytest.raises(AuthError, match="not issued by the federation CA"):
        pki.verify_party_cert(new_cert, ca[0])  # the old CA alone does not know the new one


def test_ca_bundle_refuses_a_certificate_of_an_unrelated_ca(ca) -> None:
    bundle = pki.make_ca("demo", label="rotated-1")[0] + ca[0]
    stranger, _ = pki.make_party_cert(*pki.make_ca("demo"), "carol", "demo", [])
    with pytest.raises(AuthError, match="not issued by the federation CA") as caught:
        pki.verify_party_cert(stranger, bundle)
    assert "rotated-1" in str(caught.value) and str(caught.value).count("CN=fedcore demo CA") == 2


def test_a_party_certificate_in_the_bundle_is_no_trust_anchor(ca) -> None:
    # alice's key signs a certificate claiming bob; alice's certificate pasted into ca.pem
    alice_pem, alice_key_pem = pki.make_party_cert(*ca, "alice", "demo", [])
    key = serialization.load_pem_private_key(alice_key_pem.reveal(ACCESS), password=None)
    alice = x509.load_pem_x509_certificate(alice_pem)
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bob")]))
        .issuer_name(alice.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("fedcore://demo/bob")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(AuthError, match="not issued by the federation CA"):
        pki.verify_party_cert(forged, ca[0] + alice_pem)


def test_an_expired_ca_in_the_bundle_no_longer_vouches(ca) -> None:
    short_ca = pki.make_ca("demo", valid_days=1, label="short")
    cert, _ = pki.make_party_cert(*short_ca, "alice", "demo", [])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(AuthError, match=r"the federation CA CN=fedcore demo CA short,.* is valid only"):
        pki.verify_party_cert(cert, ca[0] + short_ca[0], now=later)


def test_party_hosts_are_what_the_certificate_was_issued_for(ca) -> None:
    hosts = ["bob.example.org", "10.0.0.2", "::1"]
    cert, _ = pki.make_party_cert(*ca, "bob", "demo", hosts)
    assert pki.party_hosts(cert) == hosts
    assert pki.party_hosts(pki.make_party_cert(*ca, "bob", "demo", [])[0]) == []
