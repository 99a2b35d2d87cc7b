"""`cuntong up` brings the whole system up, prints its URLs, and Ctrl-C takes it down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from common import procs
from common.errors import MissingBinary


def test_missing_binary_says_how_to_get_it() -> None:
    with pytest.raises(MissingBinary, match=r"^victoria-metrics-x not found: .+"):
        procs.find_binary("victoria-metrics-x")
    with pytest.raises(MissingBinary, match="apt-get install mosquitto"):
        old = os.environ["PATH"]
        try:
            os.environ["PATH"] = "/nonexistent"
            procs.INSTALL_HINTS["mosquitto-test"] = procs.INSTALL_HINTS["mosquitto"]
            procs.find_binary("mosquitto-test")
        finally:
            os.environ["PATH"] = old
            del procs.INSTALL_HINTS["mosquitto-test"]


def test_up_runs_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    out = tmp_path / "up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env["CUNTONG_UP_JANUS_NODES"] = "2"  # media scales out: two local Janus nodes
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cuntong",
                "up",
                "--terminals",
                "2",
                "--state-dir",
                str(tmp_path),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 40
        api = None
        while time.monotonic() < deadline and api is None:
            assert proc.poll() is None, out.read_text()
            match = re.search(r"terminals\s+(http://\S+)/api/v1/terminals", out.read_text())
            api = match.group(1) if match else None
            time.sleep(0.2)
        assert api, out.read_text()
        text = out.read_text()
        broker_port = int(re.search(r"mqtts://127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
        people = json.loads((tmp_path / "cloud" / "demo-accounts.json").read_text())
        login = httpx.post(
            f"{api}/api/v1/auth/login", json={"username": "ops", "password": people["ops"]}
        )
        ops = {"Authorization": f"Bearer {login.json()['token']}"}
        assert httpx.get(f"{api}/api/v1/terminals").status_code == 401
        online = 0
        while time.monotonic() < deadline and online < 2:
            body = httpx.get(
                f"{api}/api/v1/terminals", params={"status": "online"}, headers=ops
            ).json()
            online = body["total"]
            time.sleep(0.3)
        assert online == 2, body
        # The teller desk runs on Janus: a demo teller logs in and is on the board.
        assert re.search(r"teller desk\s+http://\S+/teller", text), text
        login = httpx.post(
            f"{api}/api/v1/auth/login",
            json={"username": "teller1", "password": people["teller1"]},
        )
        me = httpx.get(
            f"{api}/api/v1/teller/me",
            headers={"Authorization": f"Bearer {login.json()['token']}"},
        )
        assert me.status_code == 200 and me.json()["state"] == "offline", me.text
        assert set(me.json()["skills"]["languages"]) == {"cmn", "zh-shaanxi"}
        health = httpx.get(f"{api}/healthz").json()
        assert health["desk_link"] == "ok", health
        assert [(n["name"], n["healthy"]) for n in health["media_nodes"]] == [
            ("janus-1", True),
            ("janus-2", True),
        ], health
        # The money-moving services run (calls do not drive them yet): the HSM service over
        # SoftHSM2 and the core simulator answer, and refuse a request without their secret.
        for label, guarded in (("HSM service", "/v1/keys"), ("core simulator", "/v1/postings/x")):
            url = re.search(rf"{label}\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
            assert httpx.get(f"{url}/healthz").json() == {"ok": True}, label
            assert httpx.get(f"{url}{guarded}").status_code == 401, label
        # Secured by default: the terminals enrolled with their factory claims, and the
        # broker refuses anyone without a client certificate from our CA.
        token = (tmp_path / "cloud" / "admin-token").read_text().strip()
        enrolled = httpx.get(
            f"{api}/api/v1/provisioning/terminals",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert sorted(t["id"] for t in enrolled) == ["SX-00001", "SX-00002"]
        assert httpx.get(f"{api}/api/v1/provisioning/terminals").status_code == 401
        assert _anonymous_refused(broker_port)
        # Terminals enrol over HTTPS with a server certificate from our CA.
        claim = json.loads((tmp_path / "terminals" / "SX-00001" / "claim.json").read_text())
        assert claim["enrol_url"].startswith("https://")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "stopped" in out.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", broker_port), timeout=1).close()
    finally:
        # Its children die with it (common.procs); the group takes anything in between.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _anonymous_refused(port: int) -> bool:
    """A plain MQTT connection without a client certificate gets no session."""

    async def attempt() -> bool:
        try:
            async with aiomqtt.Client("127.0.0.1", port, timeout=5):
                return False
        except aiomqtt.MqttError:
            return True

    return asyncio.run(attempt())
