"""Online identity check (联网核查) against the bank's gateway to the citizen identity service.

    client = IdentityClient("https://gw.bank/idcheck", key=b"...", key_id="terminal-0042")
    answer = await client.check(session_id, name="张建国", id_number="6101...")
    step = OUTCOMES[answer.outcome]   # teller text, customer text, passes?

`signing` (pure canonical request + HMAC), `outcomes` (the outcome table), `client` (httpx,
bounded retries), `simulator` (the gateway as a real HTTP process for tests and demos).
"""

from idcheck.client import IdentityAnswer, IdentityClient
from idcheck.errors import AnswerInvalid, IdCheckError, IdentityServiceDown, RequestRefused
from idcheck.outcomes import OUTCOMES, SERVICE_DOWN, Outcome, StepText

__all__ = [
    "OUTCOMES",
    "SERVICE_DOWN",
    "AnswerInvalid",
    "IdCheckError",
    "IdentityAnswer",
    "IdentityClient",
    "IdentityServiceDown",
    "Outcome",
    "RequestRefused",
    "StepText",
]
