"""How the cloud app takes in fleet operations: its routers and its background sender."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from cloud.security import Security
from cuntong.settings import CloudSettings
from fleet import shadows
from fleet.api import commands, registry
from fleet.api import rollouts as rollouts_api
from fleet.api import shadows as shadows_api
from fleet.rollouts import RolloutEngine
from fleet.sender import CommandSender


def routers() -> list[APIRouter]:
    return [registry.router, commands.router, shadows_api.router, rollouts_api.router]


def sender(settings: CloudSettings, security: Security | None) -> CommandSender:
    """The command sender with the shadow hooks installed; run it as a task."""
    s = CommandSender(settings, security)
    on_result, on_online = shadows.hooks(lambda: dt.datetime.now(dt.UTC))
    s.on_result[shadows.DELTA] = on_result
    s.on_online.append(on_online)
    return s


def engine(sender: CommandSender) -> RolloutEngine:
    """The rollout engine, queueing through ``sender``; run it as a task."""
    return RolloutEngine(sender.kick, lambda: dt.datetime.now(dt.UTC))
