"""Run one requested device step and sign what happened.

Handlers are a table ``step -> async (request) -> Done``: a terminal without a handler for a
step (no PIN pad, no handler written yet) answers a signed ``error`` saying so, so the desk
sees at once that only a supervisor's override can pass the step.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import CuntongError
from common.wire.call import StepRequest, StepResult
from edge.steps.sign import Done, sign_result

log = logging.getLogger("cuntong.steps")

Handler = Callable[[StepRequest], Awaitable[Done]]
#: The device key and certificate (PEM) to sign with, read at each step: a renewal
#: switches both between two steps.
Credentials = Callable[[], tuple[ec.EllipticCurvePrivateKey, str]]


class StepRunner:
    def __init__(
        self,
        credentials: Credentials,
        handlers: Mapping[str, Handler],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.credentials = credentials
        self.handlers = dict(handlers)
        self.clock = clock

    async def run(self, request: StepRequest) -> StepResult:
        handler = self.handlers.get(request.step)
        if handler is None:
            done = Done("error", f"this terminal cannot perform {request.step}")
        else:
            try:
                done = await handler(request)
            except (CuntongError, ValueError, OSError, TimeoutError) as err:
                log.warning("step %s failed: %s", request.step, err)
                done = Done("error", f"{type(err).__name__}: {err}")
        key, certificate_pem = self.credentials()
        return sign_result(key, certificate_pem, request, done, self.clock())
