"""The composition root of the API process: the cloud app with fleet operations plugged in.

``cuntong api``, ``cuntong up``, the tests and the benchmarks build the app here; the cloud
itself does not know the fleet package (it sits above the cloud).
"""

from __future__ import annotations

from fastapi import FastAPI

import fleet.wiring
from cloud.api.app import create_app as create_cloud_app
from cloud.oversight import Oversight
from common.settings import CloudSettings

__all__ = ["create_app"]


def create_app(settings: CloudSettings, *, oversight: Oversight | None = None) -> FastAPI:
    """The whole API: accounts, terminals, the teller desk, oversight and fleet operations.
    ``oversight``: tests pass their own (fixed clock, cheap password hashing)."""
    return create_cloud_app(settings, extensions=[fleet.wiring], oversight=oversight)
