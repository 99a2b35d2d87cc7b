"""``cuntong up --terminals 1 --api-replicas 2`` as a test's child: two API replicas behind
HAProxy, started on free ports, with the helpers the tests on it share."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

T = TypeVar("T")


def wait(probe: Callable[[], T], within_s: float = 60.0) -> T:
    """``probe()``'s first truthy answer within ``within_s`` (HTTP errors count as no)."""
    deadline = time.monotonic() + within_s
    last: T | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = probe()
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"condition not met in {within_s}s; last: {last!r}")


def tails(state: Path, lines: int = 60) -> str:
    """The launcher's output and every replica's and HAProxy's log, their last lines."""
    parts = []
    for path in [state / "up.out", *sorted(state.glob("api*.log")), state / "haproxy.log"]:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def listener(port: int) -> int:
    """The pid listening on a local TCP port."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise AssertionError(f"nothing listens on {port}")


@dataclasses.dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    state: Path
    api: str  # through HAProxy
    ports: list[int]  # each replica's own operator port
    people: dict[str, str]  # the demo accounts' passwords

    def login(self, account: str) -> dict[str, str]:
        r = httpx.post(
            f"{self.api}/api/v1/auth/login",
            json={"username": account, "password": self.people[account]},
            timeout=10,
        )
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def leader_port(self) -> int | None:
        for port in self.ports:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz/leader").status_code == 200:
                    return port
        return None

    def pids(self, *words: str) -> list[int]:
        """Processes under the launcher whose command line has all ``words``."""
        found = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if all(w in child.cmdline() for w in words):
                    found.append(int(child.pid))
        return found

    def stop(self) -> None:
        """SIGINT, as an operator's Ctrl-C; the launcher must exit cleanly."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(60) == 0


@contextlib.contextmanager
def up_replicas(state: Path, **env_extra: str) -> Iterator[Launched]:
    """The launcher, once it printed its URLs; on failure the logs' tails are printed (pytest
    shows them with it); at the end whatever is left of its process group is killed."""
    out = state / "up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    # Not the usual ports: another stack on the machine (a parallel run) took 8443 and
    # 7800 between the launcher's check and the bind in two runs here.
    env["CUNTONG_UP_ANY_PORTS"] = "1"
    env |= env_extra
    argv = [sys.executable, "-m", "cuntong", "up", "--terminals", "1", "--api-replicas", "2"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*argv, "--state-dir", str(state)],
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

        api = wait(api_url, 90)
        assert "API replicas      2 behind HAProxy" in out.read_text()
        haproxy_cfg = (state / "haproxy.cfg").read_text()  # both backends list both
        ports = sorted({int(p) for p in re.findall(r"server \S+ 127\.0\.0\.1:(\d+)", haproxy_cfg)})
        assert len(ports) == 2
        people = json.loads((state / "cloud" / "demo-accounts.json").read_text())
        yield Launched(proc, state, api, ports, people)
    except BaseException:
        print(tails(state))
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
