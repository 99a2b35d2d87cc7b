"""The multi-host test's network lab cleans up after itself, also when its owner dies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ha.netns import Lab, ip, sweep_orphans

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)

OWNER = """
import subprocess, sys, time
from tests.ha.netns import Lab
lab = Lab(["a", "b"]).up()
subprocess.Popen(["ip", "netns", "exec", lab.ns("a"), "sleep", "300"])
print(lab.run, lab.address("b"), flush=True)
time.sleep(300)
"""


SERVER = """
import socket
s = socket.create_server(("{addr}", 7000))
c, _ = s.accept()
c.sendall(b"hello from b")
c.close()
"""
CLIENT = """
import socket, time
for _ in range(200):
    try:
        c = socket.create_connection(("{addr}", 7000), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
print(c.recv(100).decode(), end="")
"""


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _namespaces(run: str) -> list[str]:
    return [ln.split()[0] for ln in ip("netns", "list").stdout.splitlines() if f"cm{run}-" in ln]


def test_hosts_reach_each_other_and_close_removes_everything() -> None:
    lab = Lab(["a", "b"])
    try:
        lab.up()
        # A TCP round trip from host a to host b, over the bridge.
        serve = SERVER.format(addr=lab.address("b"))
        server = subprocess.Popen(["ip", "netns", "exec", lab.ns("b"), sys.executable, "-c", serve])
        client = CLIENT.format(addr=lab.address("b"))
        try:
            done = subprocess.run(
                ["ip", "netns", "exec", lab.ns("a"), sys.executable, "-c", client],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.stdout == "hello from b", done.stderr
        finally:
            server.kill()
            server.wait()
    finally:
        lab.close()
    assert _namespaces(lab.run) == []
    assert ip("link", "show", lab.root_veth, check=False).returncode != 0


def test_a_lab_whose_owner_was_killed_is_swept_with_its_processes() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        run, _ = owner.stdout.readline().split()  # type: ignore[union-attr]
        assert len(_namespaces(run)) == 3  # a, b and the bridge's
        lab_pids = Lab(["a"], run=run).pids("a")
        assert lab_pids  # the sleep
        sweep_orphans()
        assert len(_namespaces(run)) == 3  # its owner lives: left alone
        owner.kill()
        owner.wait()
        assert {f"cm{run}-a", f"cm{run}-b", f"cm{run}-br"} <= set(sweep_orphans())
        assert _namespaces(run) == []
        deadline = time.monotonic() + 30  # SIGKILL is delivered asynchronously
        while not all(_gone(pid) for pid in lab_pids):
            assert time.monotonic() < deadline, lab_pids
            time.sleep(0.05)
    finally:
        owner.kill()
        sweep_orphans()
