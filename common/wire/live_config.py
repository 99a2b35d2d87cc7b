"""The terminal's live configuration: what a shadow's desired document may set.

Both ends check a desired document against ``LiveConfig``: the fleet API before it stores
one (a 422 naming the field), the agent before it applies one (a refused ``shadow_delta``
naming the field, the old configuration kept). Every field here is applied by the running
agent without a restart (``edge.agent.Agent.apply_config``); a field the agent cannot apply
live is not offered. Fields left out keep the agent's start-up settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import WireError


class Screen(BaseModel):
    """The customer screen: locked with a message (out of service), or in service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    locked: bool = False
    message: str = Field("", max_length=200)


class LiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Seconds between health samples (the telemetry the fleet sees).
    telemetry_interval_s: float | None = Field(None, ge=0.2, le=3600)
    #: The call link budget (kbit/s) a teller call's video and audio are fitted to.
    link_kbps: float | None = Field(None, ge=50, le=20_000)
    #: The agent's log level (its rotating log and its console).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    #: The customer screen's lock and message.
    screen: Screen | None = None
    #: Simulation only: seconds between simulated customer events (0 = none).
    sim_customer_every_s: float | None = Field(None, ge=0, le=86_400)


class InvalidConfig(WireError):
    """A desired document the schema refuses; ``field`` is the dotted path of the first
    offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check(document: Mapping[str, Any]) -> LiveConfig:
    """The document as a ``LiveConfig``, or ``InvalidConfig`` naming the field."""
    try:
        return LiveConfig.model_validate(dict(document))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise InvalidConfig(field, first["msg"]) from err


def reported(config: LiveConfig) -> dict[str, Any]:
    """The document the terminal reports: only the fields it was given."""
    return config.model_dump(exclude_none=True)
