"""Transports: the seam between a party's Context and the network."""

from fedcore.transport.base import Mailbox, Transport, check_party_names
from fedcore.transport.local import LocalNetwork, LocalTransport

__all__ = [
    "LocalNetwork",
    "LocalTransport",
    "Mailbox",
    "Transport",
    "check_party_names",
]
