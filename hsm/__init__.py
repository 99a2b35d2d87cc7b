"""The HSM service: payment-HSM host commands around a PKCS#11 token (SoftHSM2 by default).

Generic PKCS#11 has ciphers, not payment commands, and SoftHSM2 is a library inside whatever
process loads it. So the token lives in a process of its own (`python -m hsm.service`), which
offers the commands a payment HSM offers: import a key from components, generate a working key
and export it under a key-encryption key, translate a PIN block, make and check a PIN
verification value, check a new PIN against its confirmation, verify an ARQC. A clear PIN
exists only inside that process. `HsmClient` is the caller's side. See docs/transactions.md.
"""

from hsm.client import ArqcResult, HsmClient, KeyInfo
from hsm.errors import HsmError, HsmRefused, HsmUnavailable

__all__ = ["ArqcResult", "HsmClient", "HsmError", "HsmRefused", "HsmUnavailable", "KeyInfo"]
