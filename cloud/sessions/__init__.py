"""Remote video teller sessions: state machine, skill-based routing, the desk.

``state``, ``skills``, ``routing`` and ``estimate`` are pure (no asyncio, MQTT or HTTP;
time is an argument). ``desk`` is the one async shell that drives them together with the
media layer, and talks to participants only through injected callables.
"""
