"""``cuntong up --api-replicas 2``: two API replicas behind HAProxy on one machine. The
leading replica is SIGKILLed: the terminals API keeps answering through HAProxy, the desk
comes back on the other replica, and the launcher's supervisor starts the killed one again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def _wait(probe, within_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = probe()
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"condition not met in {within_s}s; last: {last!r}")


def _tails(state: Path, lines: int = 60) -> str:
    """The launcher's output and every replica's and HAProxy's log, their last lines."""
    parts = []
    for path in [state / "up.out", *sorted(state.glob("api*.log")), state / "haproxy.log"]:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def _listener(port: int) -> int:
    """The pid listening on a local TCP port."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise AssertionError(f"nothing listens on {port}")


def test_up_with_two_api_replicas_survives_the_leaders_death(tmp_path: Path) -> None:
    out = tmp_path / "up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    # Not the usual ports: another stack on the machine (a parallel run) took 8443 and
    # 7800 between the launcher's check and the bind in two runs here.
    env["CUNTONG_UP_ANY_PORTS"] = "1"
    argv = [sys.executable, "-m", "cuntong", "up", "--terminals", "1", "--api-replicas", "2"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*argv, "--state-dir", str(tmp_path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:

        def api_url() -> str | None:
            assert proc.poll() is None, out.read_text()
            match = re.search(r"terminals\s+(http://\S+)/api/v1/terminals", out.read_text())
            return match.group(1) if match else None

        api = _wait(api_url, 90)
        assert "API replicas      2 behind HAProxy" in out.read_text()
        haproxy_cfg = (tmp_path / "haproxy.cfg").read_text()  # both backends list both
        ports = sorted({int(p) for p in re.findall(r"server \S+ 127\.0\.0\.1:(\d+)", haproxy_cfg)})
        assert len(ports) == 2
        people = json.loads((tmp_path / "cloud" / "demo-accounts.json").read_text())

        def login(account: str) -> dict[str, str]:
            r = httpx.post(
                f"{api}/api/v1/auth/login",
                json={"username": account, "password": people[account]},
                timeout=10,
            )
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['token']}"}

        ops, teller = login("ops"), login("teller1")

        def online() -> bool:
            r = httpx.get(f"{api}/api/v1/terminals", params={"status": "online"}, headers=ops)
            return r.status_code == 200 and r.json()["total"] == 1

        def desk_answers() -> bool:
            return httpx.get(f"{api}/api/v1/teller/me", headers=teller).status_code == 200

        def leader_port() -> int | None:
            for port in ports:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz/leader").status_code == 200:
                        return port
            return None

        _wait(online)
        _wait(desk_answers)
        leader = _wait(leader_port)
        os.kill(_listener(leader), signal.SIGKILL)
        other = next(p for p in ports if p != leader)
        # The other replica takes the lease, not the killed one the launcher restarts within
        # a second (a newcomer leaves a dead leader's lease to the standby that was waiting,
        # cloud.lease.lead); the desk answers again through HAProxy.
        assert _wait(lambda: leader_port() == other, 120)
        _wait(desk_answers)
        failed = sum(
            httpx.get(f"{api}/api/v1/terminals", headers=ops).status_code != 200 for _ in range(20)
        )
        assert failed == 0
        # The launcher starts the killed replica again, as a standby.
        _wait(lambda: httpx.get(f"http://127.0.0.1:{leader}/healthz").status_code == 200, 90)
        assert httpx.get(f"http://127.0.0.1:{leader}/healthz/leader").status_code == 503
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    except BaseException:
        print(_tails(tmp_path))  # pytest shows it with the failure
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
