"""The units ``cuntong deploy render`` writes, run by a real systemd (``tests/ops/sdboot.py``).

One boot of systemd (PID 1 of its own PID, mount and network namespaces) is shared by the
tests of this module. A one-host inventory (API, ingest, Mosquitto, HAProxy,
VictoriaMetrics on 127.0.0.1 of the namespace) is rendered by ``cuntong deploy render``;
its tree is copied to ``/`` of the namespace (overlays: nothing reaches the host's files),
the users made by ``systemd-sysusers`` and the folders and modes by ``systemd-tmpfiles
--create``, as an installation does; then ``systemctl start``. Every assertion reads
systemd's own view (``systemctl show``) or the services' processes.

What the test adds that the render does not install: PostgreSQL (a unit of the test's,
``lab-postgres.service``), the deployment's prefix at ``/opt/cuntong`` (a venv of Debian's
python3 loading this checkout's packages), and one drop-in: ``WatchdogSec=5`` on the
ingest unit, so the watchdog test waits 5 s instead of the rendered 30.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.ops.sdboot import Booted, boot

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/lib/systemd/systemd").exists(),
    reason="needs root (namespaces, mounts) and systemd (scripts/apt-packages.txt)",
)

T = TypeVar("T")

ROLES = ["api", "ingest", "mosquitto", "victoria-metrics", "haproxy"]
UNITS = [f"cuntong-{r}.service" for r in ROLES]
PG = "/usr/lib/postgresql/15/bin"
POSTGRES_UNIT = f"""[Unit]
Description=PostgreSQL for the systemd test (the render does not install a database)

[Service]
Type=notify
User=postgres
StateDirectory=lab-pg
StateDirectoryMode=0700
ExecStartPre=/bin/sh -c 'test -s /var/lib/lab-pg/PG_VERSION || \
{PG}/initdb -D /var/lib/lab-pg -U postgres -A trust >/dev/null'
ExecStart={PG}/postgres -D /var/lib/lab-pg -h 127.0.0.1 -p 5432 -k '' -c fsync=off
"""
#: The one change to a rendered unit: a shorter watchdog, so the test waits 5 s, not 30.
INGEST_DROPIN = "[Service]\nWatchdogSec=5\n"


def _until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def _prefix(lab: Path) -> Path:
    """The deployment's ``/opt/cuntong``: a venv of Debian's python3 (any user may run it;
    the test's own interpreter may sit in /root) loading this checkout's packages."""
    prefix = lab / "prefix"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(prefix)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    (site,) = prefix.glob("lib/python3*/site-packages")
    ours = sysconfig.get_path("purelib")
    (site / "cuntong-test-venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    script = prefix / "bin" / "cuntong"
    script.write_text(
        "#!/opt/cuntong/bin/python\nimport sys\nfrom cuntong.cli import main\n\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    return prefix


def _render(lab: Path) -> Path:
    inventory = lab / "inventory.toml"
    inventory.write_text(
        '[deployment]\nprefix = "/opt/cuntong"\n'
        'db_url = "postgres://postgres@127.0.0.1:5432/postgres"\n'
        # The render's LimitNOFILE for the default 20000 (41000) is above this machine's
        # hard limit (20000; root here lacks CAP_SYS_RESOURCE to raise it), so fewer here.
        "haproxy_maxconn = 4000\n\n"
        f'[[hosts]]\nname = "solo"\naddress = "127.0.0.1"\nroles = {json.dumps(ROLES)}\n'
    )
    out = lab / "rendered"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    done = subprocess.run(
        [sys.executable, "-m", "cuntong", "deploy", "render", "--inventory", str(inventory),
         "--out", str(out)],
        env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "solo"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    lab = tmp_path_factory.mktemp("systemd")
    lab.chmod(0o755)  # the services' users reach /opt/cuntong (a bind mount of lab/prefix)
    _prefix(lab)
    tree = _render(lab)
    booted = boot(lab)
    try:
        # /opt/cuntong: the deployment's prefix (the /opt overlay, then a bind mount)
        booted.sh("mkdir -p /opt/cuntong && mount --bind /run/lab/prefix /opt/cuntong")
        # Install what the render wrote, as its docs say: copy to /, users, folders, modes.
        booted.run("cp", "-a", f"/run/lab/{tree.relative_to(lab)}/.", "/")
        booted.run("systemd-sysusers")
        booted.run("systemd-tmpfiles", "--create")
        (lab / "lab-postgres.service").write_text(POSTGRES_UNIT)
        booted.run("cp", "/run/lab/lab-postgres.service", "/etc/systemd/system/")
        (lab / "watchdog.conf").write_text(INGEST_DROPIN)
        booted.sh(
            "mkdir -p /etc/systemd/system/cuntong-ingest.service.d && "
            "cp /run/lab/watchdog.conf /etc/systemd/system/cuntong-ingest.service.d/"
        )
        booted.run("systemctl", "daemon-reload")
        booted.run("systemctl", "start", "lab-postgres.service")
        # The broker and the telemetry store first: the API's start wants both.
        booted.run("systemctl", "start", "cuntong-victoria-metrics", "cuntong-mosquitto")
        booted.run("systemctl", "start", "cuntong-api", "cuntong-ingest", "cuntong-haproxy")
        yield booted
    except BaseException:
        print(booted.journal(lines=80))
        raise
    finally:
        booted.kill()


def _state(system: Booted, unit: str) -> dict[str, str]:
    return system.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "User", "Type")


def _healthz(system: Booted) -> bool:
    """``/healthz`` through HAProxy on port 80 of the namespace."""
    done = system.run("curl", "-sf", "-m", "5", "http://127.0.0.1/healthz", check=False)
    return done.returncode == 0


def _uid_of(system: Booted, pid: str) -> str:
    return system.run("stat", "-c", "%U", f"/proc/{pid}").stdout.strip()


def test_every_unit_is_active_as_its_own_user(system: Booted) -> None:
    for unit in UNITS:
        state = _state(system, unit)
        role = unit.removeprefix("cuntong-").removesuffix(".service")
        assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (
            unit,
            state,
            system.journal(unit),
        )
        assert state["User"] == f"cuntong-{role}"
        assert _uid_of(system, state["MainPID"]) == f"cuntong-{role}"  # not root
    # Type=notify: systemd held each of these in "activating" until its READY=1
    for unit in ("cuntong-api", "cuntong-ingest", "cuntong-mosquitto", "cuntong-haproxy"):
        assert _state(system, unit)["Type"] == "notify"
    assert _until(lambda: _healthz(system), 60, "/healthz through HAProxy")


def test_secrets_are_readable_only_by_their_service(system: Booted) -> None:
    for role in ("api", "ingest", "mosquitto"):
        # tmpfiles.d gave the render's key material to the service's user, in 0700 folders
        found = system.sh(f"find /var/lib/cuntong/{role} -printf '%y %u %m %p\\n'").stdout
        for kind, owner, mode, path in (line.split() for line in found.splitlines()):
            assert owner == f"cuntong-{role}", (path, owner)
            if kind == "d" and Path(path).name in (role, "ca", "keys", "tls"):
                assert mode == "700", (path, mode)  # the render's; the service makes others
            elif "key" in Path(path).name or Path(path).name == "dynsec.json":
                assert mode == "600", (path, mode)
        assert system.run("stat", "-c", "%U %a", f"/etc/cuntong/{role}").stdout.split() == [
            "root",
            "750",
        ]
    for role in ("api", "ingest"):
        owner_mode = system.run("stat", "-c", "%U %a", f"/etc/cuntong/{role}/cloud.env").stdout
        assert owner_mode.split() == [f"cuntong-{role}", "600"]
    # another service's user (and nobody) cannot read them; their own user can
    for path, owner, other in (
        ("/etc/cuntong/api/cloud.env", "cuntong-api", "cuntong-ingest"),
        ("/var/lib/cuntong/api/ca/root-key.pem", "cuntong-api", "cuntong-haproxy"),
        ("/etc/cuntong/ingest/cloud.env", "cuntong-ingest", "nobody"),
    ):
        assert system.run("runuser", "-u", owner, "--", "cat", path, check=False).returncode == 0
        refused = system.run("runuser", "-u", other, "--", "cat", path, check=False)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr, (path, other)


def test_the_sandbox_holds_in_the_running_services(system: Booted) -> None:
    pid = _state(system, "cuntong-api")["MainPID"]
    status = system.run("cat", f"/proc/{pid}/status").stdout
    assert "NoNewPrivs:\t1" in status
    # ProtectSystem=strict: /usr read-only; ReadWritePaths: its own state folder writable
    # a command in the service's own mount namespace, as its user
    inside = ["nsenter", "-t", pid, "-m", "--", "runuser", "-u", "cuntong-api", "--"]
    refused = system.run(*inside, "touch", "/usr/cuntong-probe", check=False)
    assert "Read-only file system" in refused.stderr
    system.run(*inside, "touch", "/var/lib/cuntong/api/probe")
    # PrivateTmp: the service's /tmp is not the system's
    system.run("touch", "/tmp/outside-probe")
    assert system.run(*inside, "test", "-e", "/tmp/outside-probe", check=False).returncode != 0
    # ProtectHome
    assert system.run(*inside, "ls", "/root", check=False).returncode != 0


def test_a_killed_service_is_started_again(system: Booted) -> None:
    for unit in ("cuntong-api", "cuntong-mosquitto"):
        before = _state(system, unit)
        os_pid = before["MainPID"]
        system.run("kill", "-KILL", os_pid)

        def again(unit: str = unit, before: dict[str, str] = before) -> dict[str, str] | None:
            now = _state(system, unit)
            restarted = int(now["NRestarts"]) > int(before["NRestarts"])
            running = (now["ActiveState"], now["SubState"]) == ("active", "running")
            return now if restarted and running and now["MainPID"] != before["MainPID"] else None

        after = _until(again, 60, f"{unit} restarted")
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert _until(lambda: _healthz(system), 60, "/healthz through HAProxy after the restart")


def test_a_stopped_service_is_killed_by_the_watchdog_and_started_again(system: Booted) -> None:
    unit = "cuntong-ingest"
    before = _state(system, unit)
    assert system.show(unit, "WatchdogUSec")["WatchdogUSec"] == "5s"
    system.run("kill", "-STOP", before["MainPID"])

    def again() -> dict[str, str] | None:
        now = _state(system, unit)
        restarted = int(now["NRestarts"]) > int(before["NRestarts"])
        return now if restarted and now["ActiveState"] == "active" else None

    after = _until(again, 60, "the watchdog restarted ingest")
    assert after["MainPID"] != before["MainPID"]
    assert "Watchdog timeout" in system.journal(unit, 200)


def test_systemd_analyze_verify_accepts_the_installed_units(system: Booted) -> None:
    done = system.run(
        "systemd-analyze", "verify", "--man=no",
        *(f"/etc/systemd/system/{u}" for u in UNITS), check=False,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
