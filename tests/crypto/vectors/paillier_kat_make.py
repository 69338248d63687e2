"""Regenerate paillier_kat.json: Paillier known answers computed by ``phe`` 1.5.0 and Python's pow.

Source of truth for the vectors (independent of fedcore's code):

- ciphertexts: ``phe.PaillierPublicKey(n).raw_encrypt(m, r_value=r)`` = (1 + m n) r^n mod n^2;
- plaintexts: ``phe.PaillierPrivateKey(pk, p, q).raw_decrypt(c)`` (CRT) and the textbook
  L(c^lambda mod n^2) * mu mod n computed here with Python ints;
- DJN randomizers: Python's built-in ``pow(hs, a, n*n)`` for hs = (-x^2 mod n)^n mod n^2.

The primes are fixed: 2^31 - 1 and 2^61 - 1 (Mersenne primes), and the next primes
(gmpy2.next_prime, deterministic) after two fixed 512-bit constants written below.
Run: python tests/crypto/vectors/paillier_kat_make.py
"""

import json
import math
from pathlib import Path

import phe

KEYS = [
    (2**31 - 1, 2**61 - 1),
    (
        int(
            "d5c5e3a1c8a9f0b6b3bd4f1c8d2cb3f4d6c0e9a5c1a3f7b2e4d9c6a8b1f3e5d7"
            "c9a1b3e5f7d9c1a3b5e7f9d1c3a5b7e9f1d3c5a7b9e1f3d5c7a9b1e3f5d7c9a3",
            16,
        ),
        int(
            "f1e3d5c7b9a1e3f5d7c9b1a3e5f7d9c1b3a5e7f9d1c3b5a7e9f1d3c5b7a9e1f3"
            "d5c7b9a1e3f5d7c9b1a3e5f7d9c1b3a5e7f9d1c3b5a7e9f1d3c5b7a9e1f3d5c7",
            16,
        ),
    ),
]


def next_prime(value: int) -> int:
    import gmpy2

    return int(gmpy2.next_prime(value))


def textbook_decrypt(c: int, p: int, q: int) -> int:
    n = p * q
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    mu = pow((pow(n + 1, lam, n * n) - 1) // n, -1, n)
    return (pow(c, lam, n * n) - 1) // n * mu % n


def main() -> None:
    cases = []
    for p0, q0 in KEYS:
        p, q = (p0, q0) if p0 < 2**64 else (next_prime(p0), next_prime(q0))
        n = p * q
        pk = phe.PaillierPublicKey(n)
        sk = phe.PaillierPrivateKey(pk, p, q)
        encryptions = []
        for i, m in enumerate([0, 1, 42, n // 3, n - 1, n - 12345]):
            r = (7919 * (i + 3) ** 5 + 11) % n
            c = pk.raw_encrypt(m, r_value=r)
            assert sk.raw_decrypt(c) == m == textbook_decrypt(c, p, q)
            encryptions.append({"m": str(m), "r": str(r), "c": str(c)})
        x = 123456789 % n
        hs = pow((-x * x) % n, n, n * n)
        exponents = [0, 1, 255, 256, 2 ** ((n.bit_length() + 1) // 2) - 1, 0xDEADBEEF]
        djn = [{"a": str(a), "hs_a": str(pow(hs, a, n * n))} for a in exponents]
        cases.append(
            {
                "p": str(p),
                "q": str(q),
                "n": str(n),
                "encryptions": encryptions,
                "djn": {"x": str(x), "hs": str(hs), "powers": djn},
            }
        )
    out = {
        "source": "tests/crypto/vectors/paillier_kat_make.py: phe 1.5.0 raw_encrypt/raw_decrypt, "
        "textbook decryption and Python pow; see that file's docstring",
        "cases": cases,
    }
    Path(__file__).with_name("paillier_kat.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
