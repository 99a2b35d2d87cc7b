"""Fixtures for the rejoin tests, from the teller tests: the production-wired cloud app
with real Janus and Mosquitto (``desked``) and a fresh Janus (``janus``)."""

from tests.teller.conftest import janus  # noqa: F401 - fixtures, used by name
from tests.teller.test_teller_app import desked  # noqa: F401
