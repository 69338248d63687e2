"""Shared small keys: most fedcore.he tests use 1024/512-bit keys to stay fast."""

import pytest

from fedcore.he import generate_keypair


@pytest.fixture(scope="session")
def keys():
    return generate_keypair(1024)


@pytest.fixture(scope="session")
def other_keys():
    return generate_keypair(1024)


@pytest.fixture(scope="session")
def small_keys():
    return generate_keypair(512)
