"""Cryptographic primitives with no I/O: PKI, key agreement, masks, sharing, Paillier."""
