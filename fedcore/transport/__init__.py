"""Transports: the seam between a party's Context and the network."""

from fedcore.transport.base import Mailbox, Transport, check_party_names
from fedcore.transport.local import LocalNetwork, LocalTransport, PartyKilled

__all__ = [
    "LocalNetwork",
    "LocalTransport",
    "Mailbox",
    "PartyKilled",
    "Transport",
    "check_party_names",
]
