"""Build real edge agents for tests, in-process or as child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from common import procs
from common.settings import AgentSettings, load
from edge.agent import Agent

REGION = {"province": "陕西省", "city": "宝鸡市", "county": "陈仓区", "village": "东风村"}


def new_id(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def agent_settings(state_root: Path, broker_port: int, tid: str, **kw: object) -> AgentSettings:
    values: dict[str, object] = {
        "terminal_id": tid,
        "broker_port": broker_port,
        "state_dir": state_root / tid,
        "telemetry_interval_s": 1.0,
        "keepalive_s": 5,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 1.0,
        "simulate": True,
        **REGION,
        **kw,
    }
    return load(AgentSettings, **values)


def make_agent(state_root: Path, broker_port: int, tid: str, **kw: object) -> Agent:
    return Agent(agent_settings(state_root, broker_port, tid, **kw))


def spawn_agent(
    state_root: Path, broker_port: int, tid: str, **extra: str
) -> subprocess.Popen[bytes]:
    """``cuntong agent`` as a child process (simulated terminal); ``extra``: more
    ``CUNTONG_AGENT_*`` environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_AGENT_TERMINAL_ID": tid,
        "CUNTONG_AGENT_BROKER_PORT": str(broker_port),
        "CUNTONG_AGENT_STATE_DIR": str(state_root / tid),
        "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": "1",
        "CUNTONG_AGENT_KEEPALIVE_S": "5",
        "CUNTONG_AGENT_SIMULATE": "true",
        **extra,
    }
    return procs.start([sys.executable, "-m", "cuntong", "agent"], state_root / f"{tid}.log", env)
