"""Two API replicas behind a real HAProxy, configured by ``cuntong.deploy.haproxy_config``
(what ``cuntong deploy render`` writes), one of them killed with SIGKILL under traffic.

Real processes: Mosquitto, Janus (so the leader runs a teller desk), VictoriaMetrics, two
``cuntong api`` on one SQLite file, and ``haproxy``. Terminal-API traffic (the fleet's
terminals and commands lists) must not fail at all: HAProxy retries a refused connection
on the other replica and takes the dead one out by its health check. Teller traffic (a
supervisor watching the live calls) goes to the leader only (``/healthz/leader``); when the
leader dies it fails until the standby has taken the lease and passed a check, then succeeds
again through the same address — the test counts those failures (``bench/failover.py``
measures them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.ha.rig import (
    DESK_API,
    SUPERVISOR,
    SUPERVISOR_PASSWORD,
    TERMINAL_API,
    Replicas,
    Tally,
    find_leader,
    haproxy,
    token,
    traffic,
)
from tests.helpers import OPERATOR, OPERATOR_PASSWORD, eventually


async def test_kill_a_replica_behind_haproxy_under_traffic(
    tmp_path: Path, broker: Broker, janus: Janus, victoria: VictoriaMetrics
) -> None:
    rig = Replicas(tmp_path, broker, janus, victoria.url).start()
    replicas = rig.procs
    stop = asyncio.Event()
    try:
        leader = await eventually(lambda: find_leader(replicas), timeout=30)
        with haproxy(tmp_path, replicas) as url:
            ops = await token(url, OPERATOR, OPERATOR_PASSWORD)
            teller = await token(url, SUPERVISOR, SUPERVISOR_PASSWORD)

            async def teller_ok() -> bool:
                async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                    r = await http.get(DESK_API[0], headers={"Authorization": f"Bearer {teller}"})
                    return r.status_code == 200

            assert await eventually(teller_ok, timeout=30)  # the desk answers via HAProxy
            fleet, desk = Tally(), Tally()
            loads = [
                asyncio.create_task(traffic(url, ops, TERMINAL_API, t, stop))
                for t in (fleet, Tally())
            ]
            loads.append(asyncio.create_task(traffic(url, teller, DESK_API, desk, stop)))
            await eventually(lambda: asyncio.sleep(0, fleet.ok > 20 and desk.ok > 5))
            leader.proc.kill()  # SIGKILL: no goodbye, its lease left to expire
            leader.proc.wait()
            survivor = next(r for r in replicas if r is not leader)
            assert await eventually(lambda: find_leader([survivor]), timeout=30)
            # The desk answers again through the same address, on the other replica.
            before = desk.ok
            await eventually(lambda: asyncio.sleep(0, desk.ok > before + 5), timeout=30)
            fleet_ok_at_takeover = fleet.ok
            await eventually(
                lambda: asyncio.sleep(0, fleet.ok > fleet_ok_at_takeover + 20), timeout=30
            )
            stop.set()
            await asyncio.gather(*loads)
        print(
            f"terminal API: {fleet.ok} ok, {fleet.failed} failed; "
            f"teller API: {desk.ok} ok, {desk.failed} failed during the takeover"
        )
        assert fleet.failed == 0, fleet.errors[:5]
    finally:
        stop.set()
        rig.stop()
