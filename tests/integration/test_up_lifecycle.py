"""`cuntong up` as CI runs it: deaf-by-default to Ctrl-C, killed outright, losing a child.

A background job of a non-interactive shell inherits SIGINT as ignored; the launcher must
still stop on it. Killed with SIGKILL, it must not leave its servers running (checked at the
end of ``test_up_demo_card.py``, on the same demo: each start of it costs 12-50 s). An agent
that hangs (frozen with SIGSTOP: no more watchdog pings) is killed and started again while
the rest keeps running, and then takes a call through the cloud's signalling gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from common.wire.call import absolute_janus_url
from firmware_adapters.idcard.simulator import sample_card
from idcheck import IdentityClient
from janus_client.errors import VideoRoomError
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.helpers import eventually
from tests.teller.service_rig import Teller

READY = "Ctrl-C stops everything."


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    return env | {"CUNTONG_UP_JANUS_NODES": "1", **extra}


@dataclass
class _Up:
    proc: subprocess.Popen[bytes]
    out: Path
    #: Every descendant ever seen, for the clean-up (the launcher may be dead by then).
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def family(self) -> list[psutil.Process]:
        found = psutil.Process(self.proc.pid).children(recursive=True)
        self.seen |= {p.pid: p for p in found}
        return found


@contextlib.contextmanager
def _up(tmp: Path, env: dict[str, str]) -> Iterator[_Up]:
    """``cuntong up --terminals 1`` with SIGINT ignored, as nohup or a CI runner starts it;
    on the way out (pass or fail) it and everything it was seen to start are killed."""
    out = tmp / "up.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cuntong", "up", "--terminals", "1", "--state-dir", str(tmp)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    up = _Up(proc, out)
    try:
        deadline = time.monotonic() + 60
        while READY not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            up.family()
            time.sleep(0.2)
        up.family()
        yield up
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            up.family()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for child in up.seen.values():  # is_running guards against a reused pid
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.is_running():
                    child.kill()


def _agent(up: _Up, tid: str) -> psutil.Process | None:
    for p in up.family():
        with contextlib.suppress(psutil.Error):
            if "agent" in p.cmdline() and p.environ().get("CUNTONG_AGENT_TERMINAL_ID") == tid:
                return p
    return None


def _child(up: _Up, word: str) -> psutil.Process | None:
    """The launcher's child whose command line has ``word`` as one of its arguments."""
    for p in up.family():
        with contextlib.suppress(psutil.Error):
            if word in p.cmdline():
                return p
    return None


def _wait_for(probe, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def _sample_times(vm_url: str, tid: str) -> list[int]:
    """Raw telemetry timestamps (ms) of one of the terminal's series, as stored."""
    resp = httpx.get(f"{vm_url}/api/v1/export", params={"match[]": f'{{terminal_id="{tid}"}}'})
    resp.raise_for_status()
    lines = [line for line in resp.text.splitlines() if line.strip()]
    if not lines:
        return []
    return sorted(json.loads(lines[0])["timestamps"])


def test_sigint_stops_it_even_when_ignored_and_a_lost_agent_comes_back(tmp_path: Path) -> None:
    # Issue 14: the documented setting reaches the agents through `cuntong up`.
    env = _env(CUNTONG_AGENT_TELEMETRY_INTERVAL_S="1", CUNTONG_UP_AGENT_WATCHDOG_S="10")
    with _up(tmp_path, env) as up:
        proc, out = up.proc, up.out
        text = out.read_text()
        api = re.search(r"terminals\s+(http://\S+)/api/v1/terminals", text).group(1)  # type: ignore[union-attr]
        vm_url = re.search(r"telemetry store\s+(http://\S+)/vmui", text).group(1)  # type: ignore[union-attr]

        first = _wait_for(lambda: _agent(up, "SX-00001"))
        assert first.environ()["CUNTONG_AGENT_TELEMETRY_INTERVAL_S"] == "1"
        # On the wire: samples a second apart (the default 5 s sleep never spaces them closer).
        times = _wait_for(lambda: (t := _sample_times(vm_url, "SX-00001")) and len(t) >= 4 and t)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) < 4000, gaps

        # Issue 18: the agent is watched over its own notify socket, as systemd would.
        assert first.environ()["NOTIFY_SOCKET"] == str(tmp_path / "terminals" / "SX-00001.notify")
        assert first.environ()["WATCHDOG_USEC"] == "10000000"
        # An agent that hangs is killed and started again; the rest of the demo keeps running.
        first.suspend()  # SIGSTOP: its event loop, so its WATCHDOG=1 pings, stop
        hung = f"SX-00001 (pid {first.pid}) hung: no WATCHDOG=1"
        _wait_for(lambda: hung in out.read_text(), timeout=120)
        # The launcher sent SIGABRT, which waits on a stopped process; let it act rather
        # than wait out the 10 s to the SIGKILL (that path, on real agents:
        # test_supervisor_watchdog.py).
        with contextlib.suppress(psutil.NoSuchProcess):
            first.rlimit(psutil.RLIMIT_CORE, (0, 0))  # the abort leaves no core file
            first.resume()
        second = _wait_for(
            lambda: (p := _agent(up, "SX-00001")) and p.pid != first.pid and p, timeout=120
        )
        assert proc.poll() is None, out.read_text()
        assert "SX-00001 started again" in out.read_text()
        assert httpx.get(f"{api}/healthz").status_code == 200
        assert second.is_running()

        # Issue 15: the identity gateway runs as a child, the cloud asks it, and it answers
        # a signed check for the demo card in SX-00001's reader.
        gateway_url = re.search(r"identity gateway\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
        gateway = _child(up, "idcheck.simulator")
        assert gateway is not None, out.read_text()
        cloud_api = _child(up, "api")
        assert (
            cloud_api is not None
            and cloud_api.environ()["CUNTONG_CLOUD_IDCHECK_URL"] == gateway_url
        )
        key = (tmp_path / "idcheck" / "gateway.key").read_bytes().strip()
        assert oct((tmp_path / "idcheck" / "gateway.key").stat().st_mode & 0o777) == "0o600"
        card = sample_card(0)
        answer = asyncio.run(
            IdentityClient(gateway_url, key, "cloud").check(
                "S-up", card.text.name, card.text.id_number
            )
        )
        assert answer.outcome == "match" and answer.session_id == "S-up"

        # Issue 21 as shipped: `cuntong up` hands out gate URLs with no configuration; the
        # agent started again takes a call through the gate, and a cross-room join is
        # refused and audited.
        screen = re.search(r"customer screen\s+(http://\S+/)", text).group(1)  # type: ignore[union-attr]
        assert "CUNTONG_CLOUD_JANUS_PUBLIC_URL" not in cloud_api.environ()  # nothing set it
        people = json.loads((tmp_path / "cloud" / "demo-accounts.json").read_text())
        _wait_for(lambda: httpx.get(f"{api}/healthz").json().get("desk_link") == "ok", 60)
        # The new agent's link is up: a sample it sent after it started is stored (the
        # fleet may still show the old run's "online"; an ask made before the link is up
        # is dropped as "offline").
        restarted_ms = second.create_time() * 1000
        _wait_for(lambda: any(t > restarted_ms for t in _sample_times(vm_url, "SX-00001")), 90)
        ops = {"username": "ops", "password": people["ops"]}
        fleet = {
            "Authorization": "Bearer "
            + httpx.post(f"{api}/api/v1/auth/login", json=ops).json()["token"]
        }
        _wait_for(
            lambda: (
                httpx.get(f"{api}/api/v1/terminals/SX-00001", headers=fleet).json().get("status")
                == "online"
            ),
            90,
        )
        session = asyncio.run(_call_through_the_gate(api, screen, people["teller1"]))
        with sqlite3.connect(tmp_path / "cloud.sqlite3") as db:
            rows = db.execute(
                "select actor, target, detail from audit_entry where action = 'media_join_refused'"
            ).fetchall()
        assert [(actor, target) for actor, target, _ in rows] == [("teller1", "someone-elses-call")]
        assert json.loads(rows[0][2])["session"] == session

        # Ctrl-C stops everything, the demo card's private pcscd included.
        family = up.family()
        names = {p.name() for p in family}
        assert {"mosquitto", "janus", "pcscd"} <= names, names
        assert gateway.pid in {p.pid for p in family}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, out.read_text()
        assert "stopped" in out.read_text()
        _gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [(p.pid, p.name()) for p in alive]


async def _call_through_the_gate(api: str, screen: str, password: str) -> str:
    """The demo's teller takes SX-00001's call. Both grants carry the cloud's signalling
    gate; the terminal publishes through it (its grant holds only the gate's path), the
    teller subscribes through it, then aims its token at another room: refused. Returns
    the session."""
    teller = await Teller.login(api, "teller1", password)
    await teller.open()
    try:
        await teller.post("/me/state", {"state": "available"})
        async with httpx.AsyncClient(timeout=20) as http:

            async def screen_up() -> bool:
                try:
                    return (await http.get(f"{screen}state")).status_code == 200
                except httpx.TransportError:
                    return False  # the terminal's agent is still starting

            await eventually(screen_up, timeout=90)
            asked = await http.post(f"{screen}ask", json={"business": "card_loss"})
            assert asked.status_code == 200, asked.text
        offer = await teller.event("offer", timeout=60)
        session = offer["session"]
        grant = (await teller.post(f"/sessions/{session}/accept")).json()
        assert grant["janus_url"] == "/media/janus/janus-1", grant  # the gate, not Janus
        url = absolute_janus_url(grant["janus_url"], api)
        async with JanusClient(url, grant["token"]) as client, client.session() as js:

            async def subscribed() -> dict[str, object] | None:
                try:
                    return await (await VideoRoom.attach(js)).subscribe(
                        session, [grant["peer_feed"]], pin=grant["pin"]
                    )
                except VideoRoomError as err:
                    if err.code != 428:  # the terminal has not published yet
                        raise
                    return None

            offer_sdp = await eventually(subscribed, timeout=90)
            assert offer_sdp["type"] == "offer"  # the terminal's media, signalled via the gate
            with pytest.raises(VideoRoomError) as refused:
                await (await VideoRoom.attach(js)).subscribe(
                    "someone-elses-call", ["customer"], pin=grant["pin"]
                )
            assert refused.value.code == 433
        await teller.post(f"/sessions/{session}/hang-up", {"cause": "done"})
        return str(session)
    finally:
        await teller.close()
