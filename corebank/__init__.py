"""The bank's core system: an adapter (client) and a simulator of the core for tests and demos.

Each business outcome is posted once: the idempotency key is derived from the session and the
business, the adapter retries with backoff under that same key, and a post whose answer was lost
is settled by `reconcile(key)`. Wrong PINs are counted by the core; the third locks the card.
See docs/transactions.md.
"""

from corebank.adapter import (
    CardRecord,
    CoreBankClient,
    PinTries,
    Posting,
    PostResult,
    idempotency_key,
)
from corebank.errors import CoreBankError, CorePending, CoreRefused

__all__ = [
    "CardRecord",
    "CoreBankClient",
    "CoreBankError",
    "CorePending",
    "CoreRefused",
    "PinTries",
    "PostResult",
    "Posting",
    "idempotency_key",
]
