from typing import ClassVar

from phe.paillier import PaillierPublicKey

class EncodedNumber:
    BASE: ClassVar[int]
    LOG2_BASE: ClassVar[float]
    public_key: PaillierPublicKey
    encoding: int
    exponent: int
    def __init__(self, public_key: PaillierPublicKey, encoding: int, exponent: int) -> None: ...
    @classmethod
    def encode(
        cls,
        public_key: PaillierPublicKey,
        scalar: int | float,
        precision: float | None = None,
        max_exponent: int | None = None,
    ) -> EncodedNumber: ...
    def decode(self) -> int | float: ...
    def decrease_exponent_to(self, new_exp: int) -> EncodedNumber: ...
