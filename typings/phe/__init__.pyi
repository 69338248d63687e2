# Stubs for the part of python-paillier (phe) fedcore uses.
from phe.encoding import EncodedNumber as EncodedNumber
from phe.paillier import EncryptedNumber as EncryptedNumber
from phe.paillier import PaillierPrivateKey as PaillierPrivateKey
from phe.paillier import PaillierPrivateKeyring as PaillierPrivateKeyring
from phe.paillier import PaillierPublicKey as PaillierPublicKey
from phe.paillier import generate_paillier_keypair as generate_paillier_keypair
