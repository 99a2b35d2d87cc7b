"""Remote video teller sessions: the session state machine and skill-based routing.

Pure code only: no asyncio, no MQTT, no HTTP. The cloud service that owns the live queue
feeds these modules events and the current time, and persists what they return.
"""
