"""Typed errors of fedcore.

Every error fedcore raises on purpose is a ``FedcoreError``; the tree is::

    FedcoreError
    ├── ConfigError        a config file, parameter, script or party name is malformed
    ├── DecodeError        bytes from a peer are not a valid fedcore encoding
    ├── AuthError          a peer's certificate or claimed identity is not accepted
    ├── PolicyRefused      a party's policy refuses a job (script hash, script, initiator)
    └── ProtocolError      a protocol step went wrong (a peer broke the rules)
        ├── Timeout        a wait passed its deadline
        └── PartyDropped   a party stopped (crashed, aborted, was killed, or too many left)

Messages say what was wrong and what to do; they never carry key material, shares,
masks, model weights or plaintexts.
"""

from __future__ import annotations


class FedcoreError(Exception):
    """Base of every error fedcore raises on purpose."""


class ConfigError(FedcoreError):
    """A configuration file, CLI parameter, script or party name is malformed.

    Args:
        message: what is wrong and the expected form.
        file: the file that holds the mistake, when there is one.
        key: the dotted key within that file, when there is one.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ", ".join(p for p in (file and f"file {file}", key and f"key {key!r}") if p)
        super().__init__(f"{where}: {message}" if where else message)


class DecodeError(FedcoreError):
    """Bytes received are not a valid fedcore wire encoding; nothing was decoded."""


class AuthError(FedcoreError):
    """A peer's TLS certificate or the identity it claims is not accepted."""


class PolicyRefused(FedcoreError):
    """A party's policy refuses to run a job; the message names the party and the reason."""


class ProtocolError(FedcoreError):
    """A protocol step failed because a party did not follow it."""


class Timeout(ProtocolError):
    """A wait passed its deadline.

    Attributes:
        party: the party waited on, when there is one.
        tag: the message tag waited for, when there is one.
    """

    def __init__(self, message: str, *, party: str | None = None, tag: str | None = None):
        self.party = party
        self.tag = tag
        super().__init__(message)


class PartyDropped(ProtocolError):
    """A party is gone (crashed, killed, aborted its script) or too many parties left a round.

    Attributes:
        party: the lost party, when a single one is meant.
        step: the step that party was at, when it said so.
        lost: how many parties were lost, for a round that needs a quorum.
    """

    def __init__(
        self,
        message: str,
        *,
        party: str | None = None,
        step: str | None = None,
        lost: int | None = None,
    ):
        self.party = party
        self.step = step
        self.lost = lost
        super().__init__(message)


__all__ = [
    "AuthError",
    "ConfigError",
    "DecodeError",
    "FedcoreError",
    "PartyDropped",
    "PolicyRefused",
    "ProtocolError",
    "Timeout",
]
