"""Fixtures for the rejoin tests: the production-wired cloud app with real Janus and
Mosquitto (``desked``) from the teller app's tests."""

from tests.teller.test_teller_app import desked  # noqa: F401 - a fixture, used by name
