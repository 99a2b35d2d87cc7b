"""Fixtures: the teller tests' real Janus nodes (``janus``, ``second_janus``), shared."""

from tests.teller.conftest import janus, second_janus

__all__ = ["janus", "second_janus"]
