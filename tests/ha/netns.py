"""Hosts in network namespaces, and a small runner for the units ``cuntong deploy render``
writes: what ``tests/ha/test_multihost.py`` runs a whole deployment on.

**The network.** One namespace per host (``cm<run>-<host>``), each with a veth ``eth0`` on
a bridge that lives in its own namespace (``cm<run>-br``), addresses in a 10.213.X.0/24
picked per run. The test process reaches the hosts through one more veth pair from the root
namespace into the bridge (its end 10.213.X.1): traffic stays between namespaces made
here. Names carry a random run id, and ``Lab.close`` deletes every namespace (which takes
their veths) and the root veth, also after a failure. A lab whose test process died without
closing it (SIGKILL) is swept by the next ``Lab.up``: each lab records its owner's pid, and
namespaces of a lab whose owner is gone have their processes killed and are deleted.

**The runner, and what it does not do.** systemd is not PID 1 here, so ``UnitRunner``
plays its part from the rendered files, honestly and partly:

- *Installing*: a host's rendered tree is copied to its own root folder; the absolute
  ``/etc/cuntong`` and ``/var/lib/cuntong`` in its text files are rewritten into that root
  (hosts share one filesystem here). ``sysusers.d`` users get numeric ids (no
  ``/etc/passwd`` entry is made), and ``tmpfiles.d`` lines (``d``, ``z``, ``Z``) are applied
  with those ids.
- *Starting* a unit: ``ExecStartPre=`` then ``ExecStart=``, each through ``ip netns exec``
  and ``setpriv`` as the unit's ``User=`` (its numeric id, no supplementary groups), with
  ``Environment=`` and ``EnvironmentFile=`` (drop-ins in ``<unit>.d/*.conf`` too),
  ``WorkingDirectory=``, ``AmbientCapabilities=`` and ``LimitRTTIME=``. For ``Type=notify``
  it listens on a ``NOTIFY_SOCKET`` and waits for ``READY=1``, as systemd would.
- *Not done*: ``Restart=``, the watchdog's kill, the sandboxing (``ProtectSystem=``,
  ``PrivateTmp=``, ``NoNewPrivileges=``), ordering between units (the test starts them in
  order), and ``StartLimit*``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: The rendered absolute prefixes, rewritten into each host's root.
PREFIXES = ("/etc/cuntong", "/var/lib/cuntong")
#: Numeric ids for the rendered system users (no passwd entries are made).
FIRST_UID = 64100
#: Each lab's owner pid, so a later run can sweep a lab whose test process died.
OWNERS = Path(tempfile.gettempdir()) / "cuntong-netns-labs"


def ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=check, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans() -> list[str]:
    """Delete the namespaces (killing their processes) and root veth of every lab whose
    owner process is gone; the namespaces deleted."""
    swept = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"(cm([0-9a-f]{6})-\S+)", line)
        if m is None:
            continue
        owner = OWNERS / f"{m[2]}.pid"
        with contextlib.suppress(OSError, ValueError):
            if _alive(int(owner.read_text())):
                continue
        out = ip("netns", "pids", m[1], check=False).stdout
        for pid in (int(p) for p in out.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ip("netns", "del", m[1], check=False)
        ip("link", "del", f"c{m[2]}r", check=False)
        owner.unlink(missing_ok=True)
        swept.append(m[1])
    return swept


def _free_subnet() -> int:
    """A 10.213.X.0/24 no route of this machine uses."""
    used = ip("-4", "route", "show").stdout + ip("-4", "addr", "show").stdout
    for _ in range(100):
        x = random.randint(1, 254)
        if f"10.213.{x}." not in used:
            return x
    raise RuntimeError("no free 10.213.X.0/24")


@dataclasses.dataclass
class Lab:
    """Namespaced hosts on one bridge; ``address(name)`` is a host's 10.213.X.Y."""

    names: list[str]
    run: str = dataclasses.field(default_factory=lambda: os.urandom(3).hex())
    subnet: int = 0
    made: list[str] = dataclasses.field(default_factory=list)
    root_veth: str = ""

    def ns(self, host: str) -> str:
        return f"cm{self.run}-{host}"

    def address(self, host: str) -> str:
        return f"10.213.{self.subnet}.{11 + self.names.index(host)}"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.subnet}.1"

    def up(self) -> Lab:
        sweep_orphans()
        OWNERS.mkdir(exist_ok=True)
        (OWNERS / f"{self.run}.pid").write_text(str(os.getpid()))
        self.subnet = _free_subnet()
        bridge = self.ns("br")
        ip("netns", "add", bridge)
        self.made.append(bridge)
        ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", bridge, "link", "set", "br0", "up")
        self.root_veth = f"c{self.run}r"
        ip("link", "add", self.root_veth, "type", "veth", "peer", "name", "up0", "netns", bridge)
        ip("-n", bridge, "link", "set", "up0", "master", "br0", "up")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.root_veth)
        ip("link", "set", self.root_veth, "up")
        for i, host in enumerate(self.names):
            ns = self.ns(host)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip(
                "-n",
                ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"h{i}",
                "netns",
                bridge,
            )
            ip("-n", bridge, "link", "set", f"h{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def pids(self, host: str) -> list[int]:
        out = ip("netns", "pids", self.ns(host), check=False).stdout
        return [int(p) for p in out.split()]

    def kill_host(self, host: str) -> int:
        """SIGKILL every process in the host's namespace (a host that loses power); how
        many there were."""
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def close(self) -> None:
        for ns in reversed(self.made):
            self.kill_host(ns.removeprefix(f"cm{self.run}-"))
            ip("netns", "del", ns, check=False)
        self.made.clear()
        if self.root_veth:
            ip("link", "del", self.root_veth, check=False)
        (OWNERS / f"{self.run}.pid").unlink(missing_ok=True)


@dataclasses.dataclass
class Unit:
    name: str
    keys: dict[str, list[str]]

    def one(self, key: str, default: str = "") -> str:
        return self.keys.get(key, [default])[-1]


def parse_unit(path: Path) -> Unit:
    """A unit file and its drop-ins (``<unit>.d/*.conf``): every ``Key=value`` in order."""
    keys: dict[str, list[str]] = {}
    texts = [path.read_text()]
    dropins = path.with_name(path.name + ".d")
    if dropins.is_dir():
        texts += [p.read_text() for p in sorted(dropins.glob("*.conf"))]
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            keys.setdefault(key.strip(), []).append(value.strip())
    return Unit(path.name.removesuffix(".service"), keys)


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]  # systemd drops the quotes around a value
            env[key.strip()] = value
    return env


def _seconds(text: str) -> float:
    """A systemd time span: ``200ms``, ``2s``, ``1min``."""
    m = re.fullmatch(r"([\d.]+)\s*(ms|s|min|)", text.strip())
    if m is None:
        raise ValueError(f"time span {text!r}")
    return float(m[1]) * {"ms": 0.001, "s": 1.0, "": 1.0, "min": 60.0}[m[2]]


@dataclasses.dataclass
class Started:
    unit: str
    proc: subprocess.Popen[bytes]
    log: Path


class UnitRunner:
    """Install one host's rendered tree under ``root`` and start its units in its netns."""

    def __init__(self, lab: Lab, host: str, rendered: Path, root: Path, uids: dict[str, int]):
        self.lab, self.host, self.root, self.uids = lab, host, root, uids
        self.started: list[Started] = []
        shutil.copytree(rendered / host, root)
        for path in root.rglob("*"):
            if path.is_file() and (root / "etc") in path.parents:
                text = path.read_text(errors="strict")
                moved = text
                for prefix in PREFIXES:
                    moved = moved.replace(prefix, f"{root}{prefix}")
                if moved != text:
                    mode = path.stat().st_mode
                    path.write_text(moved)
                    path.chmod(mode & 0o7777)
        for sub in ("", "etc", "var", "var/lib", "etc/cuntong", "var/lib/cuntong"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub).chmod(0o755)
        self._sysusers()
        self._tmpfiles()

    def path(self, rendered_path: str) -> Path:
        """Where an absolute rendered path is on this host."""
        return Path(f"{self.root}{rendered_path}")

    def _sysusers(self) -> None:
        for line in (self.root / "etc/sysusers.d/cuntong.conf").read_text().splitlines():
            parts = shlex.split(line)
            if parts and parts[0] == "u":
                self.uids.setdefault(parts[1], FIRST_UID + len(self.uids))

    def _id(self, name: str) -> int:
        return 0 if name in ("root", "-") else self.uids[name]

    def _tmpfiles(self) -> None:
        for line in (self.root / "etc/tmpfiles.d/cuntong.conf").read_text().splitlines():
            kind, path, mode, user, group, *_ = line.split()
            target = Path(path) if path.startswith(str(self.root)) else self.path(path)
            if kind == "d":
                target.mkdir(parents=True, exist_ok=True)
            paths = [target]
            if kind == "Z":
                paths += list(target.rglob("*"))
            for p in paths:
                if not p.exists():
                    continue
                os.chown(p, self._id(user), self._id(group))
                if mode != "-":
                    p.chmod(int(mode, 8))

    def unit(self, name: str) -> Unit:
        return parse_unit(self.root / "etc/systemd/system" / f"{name}.service")

    def _command(self, unit: Unit, line: str) -> list[str]:
        user = unit.one("User", "root")
        uid = self._id(user)
        argv = ["ip", "netns", "exec", self.lab.ns(self.host)]
        if uid:
            argv += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            caps = [
                c.strip().lower().removeprefix("cap_")
                for c in unit.one("AmbientCapabilities").split()
                if c
            ]
            if caps:
                spec = ",".join(f"+{c}" for c in caps)
                argv += [f"--inh-caps={spec}", f"--ambient-caps={spec}"]
            argv.append("--")
        return argv + shlex.split(line)

    def _env(self, unit: Unit, notify: str | None) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
        home = unit.one("ReadWritePaths") or "/"
        env["HOME"] = home
        for raw in unit.keys.get("Environment", []):
            for item in shlex.split(raw):
                key, value = item.split("=", 1)
                env[key] = value
        for raw in unit.keys.get("EnvironmentFile", []):
            optional = raw.startswith("-")
            path = Path(raw.lstrip("-"))
            if path.exists():
                env |= _env_file(path)
            elif not optional:
                raise FileNotFoundError(f"{unit.name}: EnvironmentFile {path} is missing")
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify
            if unit.one("WatchdogSec"):
                env["WATCHDOG_USEC"] = str(int(_seconds(unit.one("WatchdogSec")) * 1e6))
        return env

    def start(self, name: str, timeout: float = 90.0) -> Started:
        """ExecStartPre (each must succeed), then ExecStart; a ``Type=notify`` unit is
        started once it said READY=1."""
        unit = self.unit(name)
        log = self.root / f"{name}.log"
        rttime = unit.one("LimitRTTIME")
        limits = tuple(int(_seconds(v) * 1e6) for v in rttime.split(":")) if rttime else None

        def preexec() -> None:
            os.setsid()
            if limits is not None:
                resource.setrlimit(resource.RLIMIT_RTTIME, (limits[0], limits[-1]))

        cwd = unit.one("WorkingDirectory") or None
        for pre in unit.keys.get("ExecStartPre", []):
            done = subprocess.run(
                self._command(unit, pre),
                env=self._env(unit, None),
                cwd=cwd,
                preexec_fn=preexec,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode:
                raise RuntimeError(
                    f"{self.host}/{name}: ExecStartPre {pre!r}: {done.stderr[-2000:]}"
                )
        notify_sock = None
        notify_path = None
        if unit.one("Type") == "notify":
            notify_path = self.root / f".notify-{name}"
            notify_path.unlink(missing_ok=True)
            notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify_sock.bind(str(notify_path))
            notify_path.chmod(0o666)
        proc = subprocess.Popen(
            self._command(unit, unit.one("ExecStart")),
            env=self._env(unit, str(notify_path) if notify_path else None),
            cwd=cwd,
            preexec_fn=preexec,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        started = Started(name, proc, log)
        self.started.append(started)
        if notify_sock is not None:
            try:
                self._wait_ready(notify_sock, started, timeout)
            finally:
                notify_sock.close()
        return started

    def _wait_ready(self, sock: socket.socket, started: Started, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            if started.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.host}/{started.unit} exited {started.proc.returncode}: "
                    f"{started.log.read_text()[-3000:]}"
                )
            with contextlib.suppress(TimeoutError):
                if b"READY=1" in sock.recv(4096).split(b"\n"):
                    return
        raise TimeoutError(
            f"{self.host}/{started.unit}: no READY=1 in {timeout:.0f} s: "
            f"{started.log.read_text()[-3000:]}"
        )
