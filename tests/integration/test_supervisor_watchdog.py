"""The supervisor's watchdog on real agents (issue 18): what ``cuntong up`` runs, smaller.

Two real agents, each started through ``edge.launcher`` as ``cuntong up`` starts them, under
one ``cuntong.supervisor`` with a watchdog, on a real broker. One is frozen with SIGSTOP
(its event loop, so its ``WATCHDOG=1`` pings, stop): the supervisor names it, sends SIGABRT
(which a stopped process cannot act on), SIGKILLs it, starts it again, and it comes back
online at the broker. The other keeps pinging and keeps running, untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import aiomqtt
import psutil
import pytest

from common import envelope
from cuntong.servers.mosquitto import Broker
from cuntong.supervisor import Child, Restarts, Supervisor
from cuntong.watchdog import Watchdog
from tests.helpers import eventually
from tests.integration.agents import new_id

#: Generous for a loaded machine: the pinging agent must never look hung.
WATCHDOG = Watchdog(interval_s=10.0, start_s=120.0, abort_s=3.0)


def _agent(tmp_path: Path, port: int, tid: str) -> Child:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_AGENT_TERMINAL_ID": tid,
        "CUNTONG_AGENT_BROKER_PORT": str(port),
        "CUNTONG_AGENT_STATE_DIR": str(tmp_path / tid),
        "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": "2",
        "CUNTONG_AGENT_KEEPALIVE_S": "5",
        "CUNTONG_AGENT_SIMULATE": "true",
    }
    argv = [sys.executable, "-m", "edge.launcher"]
    return Child(tid, argv, tmp_path / f"{tid}.log", env, Restarts(base_s=0.5, cap_s=1), WATCHDOG)


async def test_a_frozen_agent_is_killed_and_comes_back_and_a_pinging_one_keeps_running(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    frozen_id, steady_id = new_id("WD"), new_id("WD")
    sup = Supervisor()
    online: dict[str, list[int]] = {frozen_id: [], steady_id: []}  # online statuses' ts_ms

    async def tick() -> None:
        while True:
            sup.tick(time.monotonic(), 0.5)
            await asyncio.sleep(0.2)

    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as watcher:
        await watcher.subscribe("cuntong/v1/t/+/status", qos=1)

        async def listen() -> None:
            async for message in watcher.messages:
                status = envelope.parse_status(message.payload)  # type: ignore[arg-type]
                if status.online and status.terminal_id in online:
                    online[status.terminal_id].append(status.ts_ms)

        frozen = sup.add(_agent(tmp_path, broker.cfg.port, frozen_id), time.monotonic())
        steady = sup.add(_agent(tmp_path, broker.cfg.port, steady_id), time.monotonic())
        tasks = [asyncio.create_task(tick()), asyncio.create_task(listen())]
        try:
            first, kept = frozen.proc, steady.proc
            assert first is not None and kept is not None

            async def both_ready_and_online() -> bool:
                ready = all(c.liveness and c.liveness.last_ping for c in (frozen, steady))
                return bool(ready and online[frozen_id] and online[steady_id])

            await eventually(both_ready_and_online, timeout=120)
            # The launcher exec'd the agent: the child that pings is the agent itself.
            assert "agent" in psutil.Process(first.pid).cmdline()
            with caplog.at_level(logging.WARNING, logger="cuntong.supervisor"):
                os.kill(first.pid, signal.SIGSTOP)
                frozen_at_ms = time.time() * 1000

                async def back_online() -> bool:
                    return frozen.restarted == 1 and any(
                        t > frozen_at_ms for t in online[frozen_id]
                    )

                await eventually(back_online, timeout=120)
            assert first.returncode == -signal.SIGKILL  # SIGABRT waits on a stopped process
            assert frozen.hung == 1 and frozen.restarts.failures == 1
            assert frozen.proc is not first and frozen.proc is not None
            assert frozen.proc.poll() is None
            assert f"{frozen_id} (pid {first.pid}) hung: no WATCHDOG=1 for" in caplog.text
            assert (
                f"{frozen_id} (pid {first.pid}) still there after SIGABRT: SIGKILL" in caplog.text
            )
            assert f"{frozen_id} started again" in caplog.text

            # The new run is watched too: it said READY=1 and pings.
            async def new_run_pings() -> bool:
                live = frozen.liveness
                return (
                    live is not None
                    and live.ready_at is not None
                    and live.last_ping != live.ready_at
                )

            await eventually(new_run_pings, timeout=60)
            # The agent that kept pinging was never touched.
            assert steady.proc is kept and kept.poll() is None
            assert steady.restarted == 0 and steady.hung == 0
            assert steady_id not in caplog.text
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sup.stop(10)
    for child in (frozen, steady):
        assert child.proc is not None and child.proc.poll() is not None
