"""The units ``cuntong deploy render`` writes, run by a real systemd (``tests/ops/sdboot.py``).

One boot of systemd (PID 1 of its own PID, mount and network namespaces) is shared by the
tests of this module. A one-host inventory (API, ingest, Mosquitto, HAProxy,
VictoriaMetrics, Janus and coturn on 127.0.0.1 of the namespace) is rendered by
``cuntong deploy render``; its tree is copied to ``/`` of the namespace (overlays: nothing
reaches the host's files), the users made by ``systemd-sysusers`` and the folders and modes
by ``systemd-tmpfiles --create``, as an installation does; then ``systemctl start``.
Every assertion reads systemd's own view (``systemctl show``) or the services' processes.

The same host has the ``terminal`` role: its agent unit enrols with a factory claim the
test makes through the API (as ``cuntong up`` does) and runs simulated devices (a drop-in,
as tests/ha/test_multihost.py).

What the test adds that the render does not install: PostgreSQL (a unit of the test's,
``lab-postgres.service``), the deployment's prefix at ``/opt/cuntong`` (a venv of Debian's
python3 loading this checkout's packages), and two drop-ins: ``WatchdogSec=5`` on the
ingest unit, so the watchdog test waits 5 s instead of the rendered 30, and
``CUNTONG_AGENT_SIMULATE=true`` on the agent. The inventory sets
``haproxy_maxconn = 4000`` (see ``_render``).

The kiosk (``scripts/kiosk/cuntong-screen.service``) is installed as docs/terminal.md says,
with one drop-in for what this machine lacks (``KIOSK_DROPIN``), beside two units of the
test's: an Xvfb display and the real ``Screen`` server (the agent serves it on a
terminal; here the agent runs without a screen port).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from tests.helpers import service_prefix
from tests.ops.sdboot import Booted, boot

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/lib/systemd/systemd").exists(),
    reason="needs root (namespaces, mounts) and systemd (scripts/apt-packages.txt)",
)

T = TypeVar("T")

KIOSK = Path(__file__).resolve().parents[2] / "scripts" / "kiosk"

CLOUD = ["api", "ingest", "mosquitto", "victoria-metrics", "haproxy", "janus", "coturn"]
UNITS = [f"cuntong-{r}.service" for r in CLOUD]
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
#: The agent's customer screen for the kiosk (the real ``Screen`` server on the port the
#: kiosk's ``/etc/cuntong/screen.env`` names), counting the page's polls of ``/state``.
SCREEN_SCRIPT = """
import asyncio, datetime as dt
from pathlib import Path
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.screen import Screen

POLLS = Path("/run/lab-screen/polls")

class CountingScreen(Screen):
    polls = 0
    def _state(self):
        self.polls += 1
        POLLS.write_text(str(self.polls))
        return super()._state()

async def publish(payload):
    return None

async def no_capture(kind):
    return None

async def main():
    client = TellerClient(publish, lambda *a: None, lambda send: Paperwork(send, no_capture),
                          lambda: dt.datetime.now(dt.UTC))
    async with CountingScreen(client, None, 8090, voice=None):
        await asyncio.Event().wait()

asyncio.run(main())
"""
SCREEN_UNIT = """[Unit]
Description=the agent's customer screen server, standing in for cuntong-agent.service

[Service]
RuntimeDirectory=lab-screen
ExecStart=/opt/cuntong/bin/python /opt/cuntong/lab-screen.py
"""
XVFB_UNIT = """[Unit]
Description=an X display for cage's X11 backend (the test machine has no DRM/KMS screen)

[Service]
ExecStart=/usr/bin/Xvfb :7 -screen 0 1024x768x24 -nolisten tcp
ExecStartPost=/bin/sh -c 'until [ -S /tmp/.X11-unix/X7 ]; do sleep 0.1; done'
"""
#: What the kiosk unit is given on this machine, and nothing else: no tty1 to take over
#: (the test machine's console is not the namespace's to grab), and cage on wlroots' X11
#: backend inside Xvfb instead of DRM/KMS (no /dev/dri here), as tests/terminal/test_kiosk.py.
KIOSK_DROPIN = """[Service]
StandardInput=null
Environment=WLR_BACKENDS=x11 DISPLAY=:7
"""
#: The factory's part, run inside the namespace (its network) with the deployment's python:
#: one claim from the API, ``claim.json`` in the agent's state folder (0600, its user's),
#: the CA read from the enrolment listener, as tests/ha/test_multihost.py does.
CLAIM_SCRIPT = """
import json, shutil, sys, time
from pathlib import Path
import httpx
from provisioning.files import write_private
from provisioning.protocol import FactoryClaim, Region

token, terminal_id = sys.argv[1], sys.argv[2]
enrol = "https://127.0.0.1:9443"  # HAProxy's passthrough to the API's 8443
# HAProxy marks the API's listener up at its first passing check (every second), which
# may come after the API's own readiness: until then it closes the connection (NOSRV).
deadline = time.monotonic() + 60
while True:
    try:
        ca_pem = httpx.get(enrol + "/api/v1/enrol/ca", timeout=20, verify=False).text
        break
    except httpx.TransportError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
created = httpx.post(
    "http://127.0.0.1:8000/api/v1/provisioning/claims",
    json={"uses": 1, "days": 1, "id_prefix": "SD-", "label": "systemd test"},
    headers={"Authorization": "Bearer " + token},
    timeout=20,
)
created.raise_for_status()
claim = FactoryClaim(
    enrol_url=enrol, ca_pem=ca_pem, claim_token=created.json()["token"],
    terminal_id=terminal_id, hardware_model="ZN-E100",
    region=Region(province="Shaanxi", city="Xi'an", county="Huyi", village="systemd"),
)
path = write_private(Path("/var/lib/cuntong/agent/claim.json"), claim.model_dump_json().encode())
shutil.chown(path, "cuntong-agent", "cuntong-agent")
"""
#: The terminal's agent runs simulated (no camera, card reader or PIN pad here), as in
#: tests/ha/test_multihost.py.
AGENT_DROPIN = "[Service]\nEnvironment=CUNTONG_AGENT_SIMULATE=true\n"
TERMINAL_ID = "SD-solo"
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
    """The deployment's ``/opt/cuntong`` (``tests.helpers.service_prefix``), bound there
    inside the namespace."""
    return service_prefix(lab / "prefix", "/opt/cuntong/bin/python")


def _render(lab: Path) -> Path:
    inventory = lab / "inventory.toml"
    inventory.write_text(
        '[deployment]\nprefix = "/opt/cuntong"\n'
        'db_url = "postgres://postgres@127.0.0.1:5432/postgres"\n'
        # The render's LimitNOFILE for the default 20000 (41000) is above this machine's
        # hard limit (20000; root here lacks CAP_SYS_RESOURCE to raise it), so fewer here.
        "haproxy_maxconn = 4000\n\n"
        f'[[hosts]]\nname = "solo"\naddress = "127.0.0.1"\nterminal_id = "{TERMINAL_ID}"\n'
        f"roles = {json.dumps([*CLOUD, 'terminal'])}\n"
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
    with ThreadPoolExecutor(2) as pool:  # two subprocesses, side by side
        prefix, rendered = pool.submit(_prefix, lab), pool.submit(_render, lab)
        prefix.result()
        tree = rendered.result()
    booted = boot(lab)
    try:
        # /opt/cuntong: the deployment's prefix (the /opt overlay, then a bind mount)
        booted.sh("mkdir -p /opt/cuntong && mount --bind /run/lab/prefix /opt/cuntong")
        # Install what the render wrote, as its docs say: copy to /, users, folders, modes.
        booted.run("cp", "-a", f"/run/lab/{tree.relative_to(lab)}/.", "/")
        booted.run("systemd-sysusers", "/etc/sysusers.d/cuntong.conf")
        booted.run("systemd-tmpfiles", "--create", "/etc/tmpfiles.d/cuntong.conf")
        (lab / "lab-postgres.service").write_text(POSTGRES_UNIT)
        booted.run("cp", "/run/lab/lab-postgres.service", "/etc/systemd/system/")
        (lab / "watchdog.conf").write_text(INGEST_DROPIN)
        (lab / "simulate.conf").write_text(AGENT_DROPIN)
        (lab / "claim.py").write_text(CLAIM_SCRIPT)
        booted.sh(
            "set -e; cd /etc/systemd/system; "
            "mkdir -p cuntong-ingest.service.d cuntong-agent.service.d; "
            "cp /run/lab/watchdog.conf cuntong-ingest.service.d/; "
            "cp /run/lab/simulate.conf cuntong-agent.service.d/"
        )
        _install_kiosk(booted, lab)
        booted.run("systemctl", "daemon-reload")
        # The database, broker and telemetry store first: the API's start wants them.
        booted.run(
            "systemctl", "start", "lab-postgres", "cuntong-victoria-metrics", "cuntong-mosquitto",
            "cuntong-janus", "cuntong-coturn",
        )  # fmt: skip
        booted.run("systemctl", "start", "cuntong-api", "cuntong-ingest", "cuntong-haproxy")
        # The factory's claim, then the terminal's agent enrols over the API's listener
        token = json.loads((lab / "rendered" / "secrets.json").read_text())["admin_token"]
        booted.run("/opt/cuntong/bin/python", "/run/lab/claim.py", token, TERMINAL_ID)
        booted.run("systemctl", "start", "--no-block", "cuntong-agent")
        yield booted
    except BaseException:
        print(booted.journal(lines=80))
        raise
    finally:
        booted.kill()


def _install_kiosk(booted: Booted, lab: Path) -> None:
    """scripts/kiosk as docs/terminal.md says: the launcher to /opt/cuntong/scripts/kiosk/,
    the unit to /etc/systemd/system/, the user, the screen's port in /etc/cuntong/screen.env;
    plus this machine's drop-in (KIOSK_DROPIN) and the stand-ins for the agent and display."""
    kiosk = lab / "prefix" / "scripts" / "kiosk"
    kiosk.mkdir(parents=True)
    shutil.copy(KIOSK / "cuntong-screen", kiosk / "cuntong-screen")
    (lab / "prefix" / "lab-screen.py").write_text(SCREEN_SCRIPT)
    files = lab / "kiosk-files"
    files.mkdir()
    shutil.copy(KIOSK / "cuntong-screen.service", files / "cuntong-screen.service")
    (files / "lab-screen.service").write_text(SCREEN_UNIT)
    (files / "lab-xvfb.service").write_text(XVFB_UNIT)
    (files / "lab.conf").write_text(KIOSK_DROPIN)
    (files / "screen.env").write_text(
        "CUNTONG_AGENT_SCREEN_PORT=8090\nCUNTONG_KIOSK_RESTART_S=0.5\n"
    )
    (files / "sysusers.conf").write_text('u cuntong-screen - "cuntong customer screen"\n')
    booted.sh(
        "set -e; cd /run/lab/kiosk-files; "
        "cp cuntong-screen.service lab-screen.service lab-xvfb.service /etc/systemd/system/; "
        "mkdir -p /etc/systemd/system/cuntong-screen.service.d; "
        "cp lab.conf /etc/systemd/system/cuntong-screen.service.d/; "
        "mkdir -p /etc/cuntong; cp screen.env /etc/cuntong/screen.env; "
        "cp sysusers.conf /etc/sysusers.d/cuntong-screen.conf; "
        "systemd-sysusers /etc/sysusers.d/cuntong-screen.conf"
    )


def _state(system: Booted, unit: str) -> dict[str, str]:
    return system.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "User", "Type")


def _get(system: Booted, url: str) -> bool:
    """An HTTP GET inside the namespace answered 2xx."""
    fetch = f"import urllib.request as u; u.urlopen({url!r}, timeout=5)"
    return system.run("/usr/bin/python3", "-c", fetch, check=False).returncode == 0


def _healthz(system: Booted) -> bool:
    """``/healthz`` through HAProxy on port 80 of the namespace."""
    return _get(system, "http://127.0.0.1/healthz")


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
    for unit in UNITS:
        notify = unit not in ("cuntong-janus.service", "cuntong-victoria-metrics.service")
        assert _state(system, unit)["Type"] == ("notify" if notify else "simple"), unit
    assert _until(lambda: _healthz(system), 60, "/healthz through HAProxy")
    # Janus is Type=simple (no READY=1): active says only that it was started; it answers
    assert _until(lambda: _get(system, "http://127.0.0.1:8088/janus/info"), 60, "Janus info")


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
    for role, name in (
        ("api", "cloud.env"),
        ("ingest", "cloud.env"),
        ("janus", "janus.jcfg"),  # the admin secret
        ("coturn", "turnserver.conf"),  # the TURN secret
    ):
        owner_mode = system.run("stat", "-c", "%U %a", f"/etc/cuntong/{role}/{name}").stdout
        assert owner_mode.split() == [f"cuntong-{role}", "600"], name
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


def test_killed_services_and_a_hung_one_are_started_again(system: Booted) -> None:
    """SIGKILL to the API's and the broker's main processes: systemd starts them again
    (``Restart=always``). SIGSTOP to ingest's: its ``WATCHDOG=1`` pings stop, systemd's
    watchdog kills it and starts it again. All three at once, to keep the test short."""
    killed, hung = ("cuntong-api", "cuntong-mosquitto"), "cuntong-ingest"
    assert system.show(hung, "WatchdogUSec")["WatchdogUSec"] == "5s"  # the drop-in's
    before = {unit: _state(system, unit) for unit in (*killed, hung)}
    for unit in killed:
        system.sh(f"kill -KILL {before[unit]['MainPID']}")
    system.sh(f"kill -STOP {before[hung]['MainPID']}")

    def again() -> dict[str, dict[str, str]] | None:
        now = {unit: _state(system, unit) for unit in before}
        for unit, was in before.items():
            state = now[unit]
            if int(state["NRestarts"]) <= int(was["NRestarts"]):
                return None
            if (state["ActiveState"], state["SubState"]) != ("active", "running"):
                return None
        return now

    after = _until(again, 90, "all three started again")
    for unit, was in before.items():
        assert int(after[unit]["NRestarts"]) == int(was["NRestarts"]) + 1, unit
        assert after[unit]["MainPID"] != was["MainPID"], unit
    assert "Watchdog timeout" in system.journal(hung, 200)
    assert _until(lambda: _healthz(system), 60, "/healthz through HAProxy after the restarts")


def test_nothing_reached_past_the_namespaces(system: Booted) -> None:
    """The boot applied no sysctl, loaded no module, ran no udev (sdboot.MASKED)."""
    ran = system.run("systemctl", "list-units", "--all", "--plain", "--no-legend").stdout
    for unit in ("systemd-sysctl.service", "systemd-udevd.service", "systemd-remount-fs.service"):
        line = next((row for row in ran.splitlines() if row.startswith(unit)), "")
        assert line == "" or " masked " in f" {line} ", line
    assert "Apply Kernel Variables" not in system.journal(lines=2000)


#: What the archiver on the API host runs against the media host's recordings server, as
#: the API's user with the API's state (its recordings certificate from the render's CA).
FETCH_SCRIPT = """
import asyncio, datetime as dt, sys
from pathlib import Path
from cloud.media.recfetch import RecordingSource, fetch_room
from provisioning.wiring import service_tls_context

state = Path("/var/lib/cuntong/api")
tls = lambda: service_tls_context(state, sys.argv[1], dt.datetime.now(dt.UTC))
source = RecordingSource("https://127.0.0.1:8091", tls)
got = asyncio.run(fetch_room(source, "sd-1", state / "recordings" / "probe"))
print(" ".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mode & 0o777:o}" for p in got))
"""


def test_the_recordings_server_reads_janus_files_and_nothing_more(system: Booted) -> None:
    """Issue 17: ``cuntong-recordings`` runs as its own user and reads what Janus writes
    (Janus's umask 0027, its group as the unit's supplementary group), serving it over
    mutual TLS to the API's recordings certificate; it cannot write Janus's folder, and
    neither it nor another service's user reads anything else of Janus's."""
    rec = "/var/lib/cuntong/janus/recordings"
    assert system.show("cuntong-janus", "UMask")["UMask"] == "0027"
    # A recording as Janus leaves it: written by its user under its unit's umask.
    mjr = f"{rec}/sd-1-customer-audio-0.mjr"
    write = f"umask 0027; head -c 5000 /dev/urandom > {mjr}"
    system.run("runuser", "-u", "cuntong-janus", "--", "/bin/sh", "-c", write)
    owner = system.run("stat", "-c", "%U %G %a", mjr).stdout.split()
    assert owner == ["cuntong-janus", "cuntong-janus", "640"]
    system.run("systemctl", "start", "cuntong-recordings")
    state = _until(
        lambda: (s := _state(system, "cuntong-recordings"))["SubState"] == "running" and s,
        60, "cuntong-recordings running",
    )  # fmt: skip
    assert _uid_of(system, state["MainPID"]) == "cuntong-recordings"
    (system.lab / "fetch.py").write_text(FETCH_SCRIPT)
    fetch = ["runuser", "-u", "cuntong-api", "--", "/opt/cuntong/bin/python", "/run/lab/fetch.py"]
    got = _until(
        lambda: (d := system.run(*fetch, "api-solo-recordings", check=False)).returncode == 0
        and d.stdout,
        60, "the API's fetch of sd-1",
    )  # fmt: skip
    assert got.split() == ["sd-1-customer-audio-0.mjr:5000:600"], got
    # The API's broker-link certificate (same CA, not a recordings one) is refused: 403.
    refused = system.run(*fetch, "api-solo", check=False)
    assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr[-2000:]
    # Least privilege: Janus's group is the server process's only (the unit's
    # SupplementaryGroups=; its user is no member), and with it the server's credentials
    # read but cannot write or delete there; without it, its user reads nothing there,
    # and another service's user cannot even list the folder.
    gid = system.run("getent", "group", "cuntong-janus").stdout.split(":")[2]
    groups = system.run("grep", "^Groups:", f"/proc/{state['MainPID']}/status").stdout.split()
    assert gid in groups[1:], groups
    plain = system.run("runuser", "-u", "cuntong-recordings", "--", "cat", mjr, check=False)
    assert plain.returncode != 0 and "Permission denied" in plain.stderr
    asrec = ["setpriv", "--reuid=cuntong-recordings", "--regid=cuntong-recordings",
             f"--groups={gid}", "--"]  # fmt: skip
    system.run(*asrec, "/bin/sh", "-c", f"cat {mjr} > /dev/null")
    for argv in (("touch", f"{rec}/x.mjr"), ("rm", "-f", mjr)):
        done = system.run(*asrec, *argv, check=False)
        assert done.returncode != 0 and "Permission denied" in done.stderr, argv
    other = system.run("runuser", "-u", "cuntong-haproxy", "--", "ls", rec, check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr
    assert system.run("test", "-e", mjr, check=False).returncode == 0


def test_systemd_analyze_verify_accepts_the_installed_units(system: Booted) -> None:
    done = system.run(
        "systemd-analyze", "verify", "--man=no",
        *(f"/etc/systemd/system/{u}" for u in [*UNITS, "cuntong-recordings.service"]),
        check=False,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def _polls(system: Booted) -> int:
    done = system.run("cat", "/run/lab-screen/polls", check=False)
    return int(done.stdout or 0)


def _chromium_under(system: Booted, cage: str) -> str | None:
    """The browser process: the child of the launcher (cage's child) named chromium."""
    table = system.sh("cat /proc/[0-9]*/stat 2>/dev/null", check=False).stdout
    rows = []
    for line in table.splitlines():  # pid (comm) state ppid …
        pid, rest = line.split(" (", 1)
        comm, fields = rest.rsplit(") ", 1)
        rows.append((pid, fields.split()[1], comm))
    launchers = [pid for pid, ppid, comm in rows if ppid == cage and comm == "cuntong-screen"]
    browsers = [pid for pid, ppid, comm in rows if ppid in launchers and comm == "chromium"]
    return browsers[0] if browsers else None


def test_the_kiosk_unit_shows_the_screen_and_comes_back_after_crashes(system: Booted) -> None:
    unit = "cuntong-screen.service"
    # Started here, stopped at the end: Chromium's software rendering would slow the other
    # tests. Its unit Wants= the agent, which the fixture started after making its claim.
    system.run("systemctl", "start", "lab-xvfb.service", "lab-screen.service")
    system.run("systemctl", "start", "--no-block", unit)
    try:
        _the_kiosk_comes_back(system, unit)
    finally:
        system.run("systemctl", "stop", unit, "lab-screen.service", "lab-xvfb.service")


def _the_kiosk_comes_back(system: Booted, unit: str) -> None:
    def up() -> tuple[dict[str, str], str] | None:
        state = _state(system, unit)
        if state["ActiveState"] != "active" or state["MainPID"] == "0":
            return None
        browser = _chromium_under(system, state["MainPID"])
        return (state, browser) if browser else None

    state, first = _until(up, 90, "the kiosk's Chromium under cage")
    assert state["User"] == "cuntong-screen"
    assert _uid_of(system, state["MainPID"]) == "cuntong-screen"
    assert _uid_of(system, first) == "cuntong-screen"
    cmdline = system.run("cat", f"/proc/{first}/cmdline").stdout.split("\0")
    assert "--kiosk" in cmdline and "--ozone-platform=wayland" in cmdline  # inside cage
    polls = _until(lambda: _polls(system) >= 3 and _polls(system), 90, "the page polls")

    # Chromium crashes: the launcher starts another; systemd had nothing to do
    system.sh(f"kill -KILL {first}")
    cage = state["MainPID"]

    def another(cage: str = cage, old: str = first) -> str | None:
        browser = _chromium_under(system, cage)
        return browser if browser not in (None, old) else None

    _until(another, 90, "a new Chromium after the crash")
    _until(lambda: _polls(system) >= polls + 3, 90, "the new page polls")
    assert _state(system, unit)["NRestarts"] == state["NRestarts"]
    log = system.journal(unit, 400)
    assert "chromium exited with status" in log  # the launcher's restart, not systemd's
    assert "session opened for user cuntong-screen" in log  # PAMName=login

    # cage itself dies: systemd starts the unit again, and with it a new Chromium
    system.sh(f"kill -KILL {cage}")

    def restarted() -> tuple[dict[str, str], str] | None:
        found = up()
        if found and int(found[0]["NRestarts"]) > int(state["NRestarts"]):
            return found if found[0]["MainPID"] != cage else None
        return None

    after, _ = _until(restarted, 90, "systemd restarted the kiosk after cage died")
    assert int(after["NRestarts"]) == int(state["NRestarts"]) + 1
    polls = _polls(system)
    _until(lambda: _polls(system) >= polls + 3, 90, "the page polls after the restart")


def _connected_to_broker(system: Booted, pid: str) -> bool:
    """An established TCP connection from ``pid`` to the broker's mTLS port."""
    out = system.run("ss", "-Htnp", "state", "established", "dport", "= :8883").stdout
    return f"pid={pid}," in out


def test_the_terminal_agent_unit_runs_with_its_one_capability(system: Booted) -> None:
    """The rendered agent unit (``cuntong.deploy.agent_unit``), simulated devices (drop-in):
    READY=1 once it enrolled with the factory claim; as ``cuntong-agent`` with
    ``CAP_SYS_NICE`` as its only capability, ``NoNewPrivileges`` and the real-time time
    limit; connected to the broker over mTLS. SIGKILL: systemd starts it again, it is ready
    and connected again."""
    unit = "cuntong-agent.service"

    def ready() -> dict[str, str] | None:
        state = _state(system, unit)
        return state if (state["ActiveState"], state["SubState"]) == ("active", "running") else None

    state = _until(ready, 90, "the agent ready")
    assert state["User"] == "cuntong-agent" == _uid_of(system, state["MainPID"])
    status = dict(
        line.split(":\t", 1)
        for line in system.run("cat", f"/proc/{state['MainPID']}/status").stdout.splitlines()
        if ":\t" in line
    )
    sys_nice = 1 << 23
    for kind in ("CapAmb", "CapEff", "CapPrm", "CapBnd"):
        assert int(status[kind], 16) == sys_nice, (kind, status[kind])
    assert status["NoNewPrivs"].strip() == "1"
    limits = system.run("cat", f"/proc/{state['MainPID']}/limits").stdout
    assert any(
        line.startswith("Max realtime timeout") and line.split()[3:5] == ["200000", "2000000"]
        for line in limits.splitlines()
    ), limits
    # it enrolled with the factory claim (an identity installed) and is connected over mTLS
    identity = system.sh("ls /var/lib/cuntong/agent/identity/current").stdout.split()
    assert identity == ["cert.pem", "key.pem"], identity
    assert _until(lambda: _connected_to_broker(system, state["MainPID"]), 60, "agent on 8883")

    system.sh(f"kill -KILL {state['MainPID']}")

    def again() -> dict[str, str] | None:
        now = ready()
        if now and int(now["NRestarts"]) > int(state["NRestarts"]):
            return now
        return None

    after = _until(again, 90, "the agent started again and ready")
    assert after["MainPID"] != state["MainPID"]
    assert _until(lambda: _connected_to_broker(system, after["MainPID"]), 60, "agent back")
