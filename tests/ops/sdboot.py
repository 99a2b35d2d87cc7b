"""A real systemd, booted as PID 1 of a fresh PID, mount and network namespace, for tests.

systemd is not PID 1 on the test machine, but it runs as the init of a PID namespace of its
own (``unshare --pid --fork --mount --net --mount-proc``). A mount namespace does not
isolate files, so before systemd starts, the namespace gets:

- ``/etc``, ``/var`` and ``/opt`` as overlays (the host's folders below, a folder of the lab
  above): what systemd-sysusers writes to ``/etc/passwd``, units and configuration put in
  ``/etc``, state in ``/var/lib`` — all of it lands in the lab folder, never on the host;
- its own ``/run`` and ``/tmp`` (tmpfs: X and lock files do not clash with other tests);
- the lab folder itself at ``/run/lab`` (to copy files in from);
- its own network namespace with only a loopback, so ports (80, 8000, 8883 …) are its own,
  and its own UTS and IPC namespaces (hostname, message queues);
- the units that would act on the machine's kernel or devices masked (``MASKED``): sysctl,
  modules, udev, static device nodes, remounting the root. (Kernel settings outside these
  namespaces are machine-wide: an earlier version without the masks let
  systemd-sysctl apply ``/usr/lib/sysctl.d`` — ``fs.protected_*`` — to the machine.)

It boots ``cuntong-lab.target`` (journald only), not the machine's default target: the
machine's own enabled services are not started. The namespace dies with its PID 1:
``Booted.kill`` sends it SIGKILL, and so does the kernel when the test process dies
(``PR_SET_PDEATHSIG`` on ``unshare``, ``--kill-child`` on PID 1), which takes every
process in the namespace with it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import procs

BOOT = r"""
set -eu
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/lab
mount --bind "$LAB" /run/lab
for d in etc var opt; do
    mkdir -p "$LAB/overlay/$d/upper" "$LAB/overlay/$d/work"
    mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=$LAB/overlay/$d/upper,workdir=$LAB/overlay/$d/work" "/$d"
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
ip link set lo up
mkdir -p /run/systemd/system
# What would reach past the namespaces into the machine's kernel or devices stays off: the
# first unit with default dependencies pulls in sysinit.target, which would apply sysctl.d
# to the kernel (fs.* settings are machine-wide), load modules, run udev over the
# machine's devices, make nodes in the shared /dev and remount the root's superblock.
for unit in $MASKED; do ln -s /dev/null "/run/systemd/system/$unit"; done
cat > /run/systemd/system/cuntong-lab.target <<'TARGET'
[Unit]
Description=cuntong test boot: journald and nothing else
Wants=systemd-journald.socket systemd-journald.service
TARGET
exec /lib/systemd/systemd --system --unit=cuntong-lab.target
"""


#: Units masked in the namespace (``/run/systemd/system/<unit>`` -> ``/dev/null``).
MASKED = (
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "modprobe@.service",
    "kmod-static-nodes.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-hwdb-update.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-setup.service",
    "systemd-remount-fs.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-random-seed.service",
    "systemd-pstore.service",
    "systemd-boot-update.service",
    "systemd-repart.service",
    "systemd-firstboot.service",
    "systemd-machine-id-commit.service",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
)


@dataclass
class Booted:
    """A running systemd in its namespaces; ``pid`` is its PID 1 as this machine sees it."""

    unshare: subprocess.Popen[bytes]
    pid: int
    lab: Path

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the namespaces (mount, PID, network) as root."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-p", "-n", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("/bin/sh", "-c", script, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show -p …``: systemd's own view of a unit."""
        out = self.run("systemctl", "show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str = "", lines: int = 60) -> str:
        which = ["-u", unit] if unit else []
        return self.run(
            "journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines), *which,
            check=False,
        ).stdout  # fmt: skip

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.unshare.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.unshare.kill()
            self.unshare.wait(timeout=30)


def boot(lab: Path, timeout: float = 60) -> Booted:
    """Boot systemd in fresh namespaces over ``lab``; return once it says ``running``."""
    lab.mkdir(parents=True, exist_ok=True)
    unshare = procs.start(
        [
            "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--net", "--uts",
            "--ipc", "--mount-proc", "env", f"LAB={lab}", f"MASKED={' '.join(MASKED)}",
            "/bin/bash", "-c", BOOT,
        ],
        lab / "boot.log",
    )  # fmt: skip
    booted = None
    try:
        deadline = time.monotonic() + timeout
        while booted is None:
            children = _children(unshare.pid)
            if children and _comm(children[0]) == "systemd":
                booted = Booted(unshare, children[0], lab)
                break
            if unshare.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"systemd did not start: {(lab / 'boot.log').read_text()}")
            time.sleep(0.1)
        while True:
            state = booted.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return booted
            if unshare.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"systemd is {state!r}: {(lab / 'boot.log').read_text()}")
            time.sleep(0.2)
    except BaseException:
        if booted is not None:
            booted.kill()
        else:
            unshare.kill()
            unshare.wait(timeout=30)
        raise


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
