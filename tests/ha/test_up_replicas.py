"""``cuntong up --api-replicas 2``: two API replicas behind HAProxy on one machine. The
leading replica is SIGKILLed: the terminals API keeps answering through HAProxy, the desk
comes back on the other replica, and the launcher's supervisor starts the killed one again.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.ha.uprig import listener, up_replicas, wait


def test_up_with_two_api_replicas_survives_the_leaders_death(tmp_path: Path) -> None:
    with up_replicas(tmp_path) as up:
        api, ports = up.api, up.ports
        ops, teller = up.login("ops"), up.login("teller1")

        def online() -> bool:
            r = httpx.get(f"{api}/api/v1/terminals", params={"status": "online"}, headers=ops)
            return r.status_code == 200 and r.json()["total"] == 1

        def desk_answers() -> bool:
            return httpx.get(f"{api}/api/v1/teller/me", headers=teller).status_code == 200

        wait(online)
        wait(desk_answers)
        leader = wait(up.leader_port)
        os.kill(listener(leader), signal.SIGKILL)
        other = next(p for p in ports if p != leader)
        # The other replica takes the lease, not the killed one the launcher restarts within
        # a second (a newcomer leaves a dead leader's lease to the standby that was waiting,
        # cloud.lease.lead); the desk answers again through HAProxy.
        assert wait(lambda: up.leader_port() == other, 120)
        wait(desk_answers)
        failed = sum(
            httpx.get(f"{api}/api/v1/terminals", headers=ops).status_code != 200 for _ in range(20)
        )
        assert failed == 0
        # The launcher starts the killed replica again, as a standby.
        wait(lambda: httpx.get(f"http://127.0.0.1:{leader}/healthz").status_code == 200, 90)
        assert httpx.get(f"http://127.0.0.1:{leader}/healthz/leader").status_code == 503
        up.stop()
