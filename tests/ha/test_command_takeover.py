"""A command's reply that arrives while the leading API replica dies is recorded by the other
one (issue 17, "commands survive"), in secured mode: ``cuntong up --api-replicas 2`` (an
mTLS broker with dynamic security, two replicas, HAProxy, a real agent).

The agent is frozen (SIGSTOP) while the leader sends it a ``ping``, so the reply is still
outstanding when the leader is SIGKILLed; the agent is thawed at once and replies before
any standby can have taken the lease. The reply must still end the command ``succeeded``
(before, it went only to the dead leader's sender session and the command timed out).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.ha.test_up_replicas import _listener, _tails, _wait


def _agent_pid(launcher: int) -> int:
    """The agent process (the supervisor's child the edge launcher turned into)."""
    for child in psutil.Process(launcher).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "cuntong" in cmdline and "agent" in cmdline:
                return int(child.pid)
    raise AssertionError("no agent process")


def test_a_reply_arriving_while_the_leader_dies_is_recorded_by_the_other_replica(
    tmp_path: Path,
) -> None:
    out = tmp_path / "up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
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
    agent = None
    try:

        def api_url() -> str | None:
            assert proc.poll() is None, out.read_text()
            match = re.search(r"terminals\s+(http://\S+)/api/v1/terminals", out.read_text())
            return match.group(1) if match else None

        api = _wait(api_url, 90)
        ports = sorted(
            {
                int(p)
                for p in re.findall(
                    r"server \S+ 127\.0\.0\.1:(\d+)", (tmp_path / "haproxy.cfg").read_text()
                )
            }
        )
        people = json.loads((tmp_path / "cloud" / "demo-accounts.json").read_text())
        password = people["ops"]
        r = httpx.post(
            f"{api}/api/v1/auth/login", json={"username": "ops", "password": password}, timeout=10
        )
        r.raise_for_status()
        ops = {"Authorization": f"Bearer {r.json()['token']}"}

        def online() -> str | None:
            r = httpx.get(f"{api}/api/v1/terminals", params={"status": "online"}, headers=ops)
            items = r.json()["items"] if r.status_code == 200 else []
            return str(items[0]["id"]) if len(items) == 1 else None

        def leader_port() -> int | None:
            for port in ports:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz/leader").status_code == 200:
                        return port
            return None

        tid = _wait(online)
        leader = _wait(leader_port)

        def state(cid: str) -> str | None:
            r = httpx.get(f"{api}/api/v1/fleet/commands/{cid}", headers=ops, timeout=10)
            return str(r.json()["state"]) if r.status_code == 200 else None

        # A first command shows the path works before anything dies.
        body = {"name": "ping", "terminals": [tid], "args": {"n": 1}}
        r = httpx.post(f"{api}/api/v1/fleet/commands", json=body, headers=ops, timeout=10)
        assert r.status_code == 201, r.text
        first = r.json()["commands"][0]
        _wait(lambda: state(first) == "succeeded", 30)

        # The agent frozen: the leader sends the command, its reply cannot come yet.
        agent = _agent_pid(proc.pid)
        os.kill(agent, signal.SIGSTOP)
        body = {"name": "ping", "terminals": [tid], "args": {"n": 2}}
        r = httpx.post(f"{api}/api/v1/fleet/commands", json=body, headers=ops, timeout=10)
        assert r.status_code == 201, r.text
        cid = r.json()["commands"][0]
        _wait(lambda: state(cid) == "sent", 30)
        # The leader dies; the agent thaws at once and replies while nobody leads.
        os.kill(_listener(leader), signal.SIGKILL)
        os.kill(agent, signal.SIGCONT)
        agent = None
        final = _wait(lambda: (s := state(cid)) not in (None, "sent", "queued") and s, 60)
        assert final == "succeeded", f"the reply was lost in the takeover: {final}"
        other = next(p for p in ports if p != leader)
        assert _wait(lambda: leader_port() == other, 60)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    except BaseException:
        print(_tails(tmp_path))
        raise
    finally:
        if agent is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
