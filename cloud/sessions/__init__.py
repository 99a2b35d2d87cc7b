"""Remote video teller sessions: state machine, skill-based routing, the desk.

``state``, ``skills``, ``routing``, ``estimate`` and ``grants`` are pure (no asyncio, MQTT
or HTTP; time is an argument). ``desk`` is the one async shell that drives them together
with the media layer and talks to participants only through injected callables;
``outbox`` delivers its messages, ``store``/``models`` persist them, ``api`` is the
tellers' HTTP and WebSocket surface. See docs/teller.md.
"""
