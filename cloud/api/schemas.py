"""Public response schemas of the terminals API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class Presence(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Region(BaseModel):
    province: str
    city: str
    county: str
    village: str


class TerminalSummary(BaseModel):
    id: str
    status: Presence
    region: Region
    hw_model: str
    agent_version: str
    last_seen_at: datetime | None


class TerminalDetail(TerminalSummary):
    versions: dict[str, str]
    status_changed_at: datetime | None
    health: dict[str, Any]
    health_at: datetime | None
    created_at: datetime


class TerminalPage(BaseModel):
    items: list[TerminalSummary]
    total: int
    page: int
    page_size: int


class SeriesOut(BaseModel):
    metric: str
    points: list[tuple[float, float]]


class TelemetryOut(BaseModel):
    terminal_id: str
    start: datetime
    end: datetime
    step_s: int
    series: list[SeriesOut]


class EventOut(BaseModel):
    seq: int
    ts: datetime
    type: str
    data: dict[str, Any]
