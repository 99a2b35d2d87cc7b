"""Device steps on the terminal: the desk asks (``StepRequest``), the agent drives the real
adapter and answers with a ``StepResult`` signed by the terminal's enrolled device key.

``sign`` is pure (key, request, what happened, ``now`` → the signed message); ``runner``
dispatches a request to the step's handler from a table and turns every failure into a
signed ``error`` result naming what went wrong; ``idcard`` and ``liveness`` are handlers.
"""
