"""The public surface of the gRPC transport and the PKI module is pinned."""

from fedcore.crypto import pki
from fedcore.transport import grpc


def test_grpc_transport_exports() -> None:
    assert sorted(grpc.__all__) == [
        "GrpcTransport",
        "PeerCheck",
        "PeerNode",
        "PortLimits",
        "Revoked",
        "TlsFiles",
        "TlsMaterial",
        "peer_certificate",
        "split_address",
    ]


def test_pki_exports() -> None:
    assert sorted(pki.__all__) == [
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
