"""`cuntong deploy render` and the sd_notify protocol the rendered units rely on.

The units are checked by systemd's own `systemd-analyze verify`, HAProxy's configuration by
`haproxy -c`; readiness and watchdog pings are read from a real Unix datagram socket that a
real `cuntong api` process is pointed at, as systemd would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import procs, sdnotify
from common.errors import ConfigError
from cuntong.deploy import ROLES

INVENTORY = """
[deployment]
prefix = "{prefix}"
db_url = "postgres://cuntong@10.20.0.5:5432/cuntong"

[[hosts]]
name = "cloud-1"
address = "10.20.0.11"
roles = ["api", "ingest", "haproxy"]

[[hosts]]
name = "cloud-2"
address = "10.20.0.12"
roles = ["api"]

[[hosts]]
name = "broker-1"
address = "10.20.0.21"
roles = ["mosquitto", "victoria-metrics"]

[[hosts]]
name = "broker-2"
address = "10.20.0.22"
roles = ["mosquitto"]

[[hosts]]
name = "media-1"
address = "10.20.0.31"
roles = ["janus", "coturn"]

[[hosts]]
name = "term-1"
address = "10.20.0.41"
roles = ["terminal"]
terminal_id = "SX-00041"
"""


def _cuntong(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    return subprocess.run(
        [sys.executable, "-m", "cuntong", *argv],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.toml"
    # bin/cuntong must exist for systemd-analyze: this virtualenv stands in for /opt/cuntong.
    inventory.write_text(INVENTORY.format(prefix=sys.prefix))
    out = tmp_path / "out"
    done = _cuntong("deploy", "render", "--inventory", str(inventory), "--out", str(out))
    assert done.returncode == 0, done.stderr
    # Terminals enrol through HAProxy's TLS passthrough: the claim's enrol_url.
    assert "enrol_url = https://10.20.0.11:9443" in done.stdout, done.stdout
    return out


def _unit(out: Path, host: str, role: str) -> dict[str, list[str]]:
    text = (out / host / "etc/systemd/system" / f"cuntong-{role}.service").read_text()
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_render_writes_units_users_and_private_secrets(rendered: Path, tmp_path: Path) -> None:
    placed = {
        (host.name, unit.name.removeprefix("cuntong-").removesuffix(".service"))
        for host in rendered.iterdir()
        if host.is_dir() and host.name != "pki"  # the CA's folder
        for unit in (host / "etc/systemd/system").iterdir()
    }
    # A terminal host runs the edge agent's unit.
    # A media host also runs the recordings server beside Janus.
    assert {role for _, role in placed} == set(ROLES) - {"terminal"} | {"agent", "recordings"}
    assert ("media-1", "recordings") in placed
    assert ("cloud-2", "api") in placed and ("cloud-2", "ingest") not in placed
    for host, role in placed:
        unit = _unit(rendered, host, role)
        assert unit["User"] == [f"cuntong-{role}"] and unit["Restart"] == ["always"]
        users = (rendered / host / "etc/sysusers.d/cuntong.conf").read_text()
        assert f"u cuntong-{role} " in users
    for role in ("api", "ingest"):
        unit = _unit(rendered, "cloud-1", role)
        assert unit["Type"] == ["notify"] and unit["WatchdogSec"] == ["30"]
    # Secrets: 0600 in the render, and owned by the service's user once installed.
    env = rendered / "cloud-1/etc/cuntong/api/cloud.env"
    assert env.stat().st_mode & 0o777 == 0o600
    tmpfiles = (rendered / "cloud-1/etc/tmpfiles.d/cuntong.conf").read_text()
    assert "z /etc/cuntong/api/cloud.env 0600 cuntong-api cuntong-api -" in tmpfiles
    # Ingest stays on beside the ingest unit: without it the API runs no command sender.
    assert "CUNTONG_CLOUD_INGEST=true" in env.read_text()
    turn = rendered / "media-1/etc/cuntong/coturn/turnserver.conf"
    assert turn.stat().st_mode & 0o777 == 0o600
    secret = next(ln for ln in env.read_text().splitlines() if "TURN_SECRET" in ln)
    assert f"static-auth-secret={secret.split('=', 1)[1]}" in turn.read_text()
    mosquitto = (rendered / "broker-1/etc/cuntong/mosquitto/mosquitto.conf").read_text()
    assert "user cuntong-mosquitto" in mosquitto and "listener 8883 10.20.0.21" in mosquitto
    # Issue 21: the refusal plugin is loaded before dynamic-security, and the broker unit
    # compiles it from the rendered source before the first start.
    plugins = [ln for ln in mosquitto.splitlines() if ln.startswith("plugin ")]
    assert len(plugins) == 2 and "cuntong_refusals-" in plugins[0], plugins
    assert "dynamic_security" in plugins[1], plugins
    unit = (rendered / "broker-1/etc/systemd/system/cuntong-mosquitto.service").read_text()
    pre = next(ln for ln in unit.splitlines() if ln.startswith("ExecStartPre="))
    so = plugins[0].split(" ", 1)[1]
    assert (
        f"test -f {so} || /usr/bin/gcc" in pre
        and "/etc/cuntong/mosquitto/cuntong_refusals.c" in pre
    )
    source = rendered / "broker-1/etc/cuntong/mosquitto/cuntong_refusals.c"
    argv = pre.split("|| ", 1)[1].rstrip("'").replace(so, str(tmp_path / "p.so"))
    argv = argv.replace("/etc/cuntong/mosquitto/cuntong_refusals.c", str(source))
    subprocess.run(argv.split(), check=True, timeout=120)  # the shipped source builds
    assert (tmp_path / "p.so").stat().st_size > 0
    haproxy = (rendered / "cloud-1/etc/cuntong/haproxy/haproxy.cfg").read_text()
    assert "server cloud-1 10.20.0.11:8000 check" in haproxy
    assert "server cloud-2 10.20.0.12:8000 check" in haproxy
    # Issue 17: terminals' HTTPS (enrolment, renewal, log upload, call gate) through any
    # API host: TLS passed through on the lb's 9443 (its own port: here the lb shares
    # cloud-1's host, whose API listens on 8443), each host checked.
    tcp = haproxy.split("frontend terminals\n", 1)[1]
    front, back = tcp.split("\nbackend terminals\n", 1)
    assert "mode tcp" in front and "bind 10.20.0.11:9443" in front, tcp
    assert "default_backend terminals" in front, tcp
    assert "mode tcp" in back and "balance leastconn" in back, tcp
    assert "server cloud-1 10.20.0.11:8443 check" in back
    assert "server cloud-2 10.20.0.12:8443 check" in back


def _env(path: Path) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)


def test_render_two_brokers_the_cloud_on_both_and_the_terminal_agent(rendered: Path) -> None:
    """Issue 17: every broker host gets its own broker (config and mTLS files under one CA,
    every cloud process in its dynamic-security state); the cloud subscribes on all of them,
    in inventory order, which is the list terminals enrol with; a terminal host gets the
    agent's unit with its real-time grant and its terminal id."""
    from cryptography import x509

    for host, role in (("cloud-1", "api"), ("cloud-1", "ingest"), ("cloud-2", "api")):
        env = _env(rendered / host / "etc/cuntong" / role / "cloud.env")
        assert env["CUNTONG_CLOUD_BROKERS"] == "10.20.0.21:8883,10.20.0.22:8883"
        assert env["CUNTONG_CLOUD_BROKER_HOST"] == "10.20.0.21"
        # The CA and signing keys the cloud process issues and signs with, private.
        state = rendered / host / "var/lib/cuntong" / role
        assert (state / "ca/issuing-key.pem").stat().st_mode & 0o777 == 0o600
        assert (state / "keys").stat().st_mode & 0o777 == 0o700
    api2 = _env(rendered / "cloud-2/etc/cuntong/api/cloud.env")
    # The media host is a Janus node the cloud reads as its own settings do; the JSON is
    # single-quoted, since systemd's EnvironmentFile= would drop its double quotes.
    from common.settings import CloudSettings

    nodes = api2["CUNTONG_CLOUD_JANUS_NODES"]
    assert nodes[0] == nodes[-1] == "'"
    (node,) = CloudSettings(janus_nodes=json.loads(nodes[1:-1])).media_nodes()
    assert node.url == "http://10.20.0.31:8088/janus"
    # The desk reaches the media host's admin API (rooms, grants): it listens on the host's
    # address and admits this host and the API hosts (the multi-host test found it on
    # 127.0.0.1 only, so no desk could ever use the node).
    assert node.admin_url == "http://10.20.0.31:7088/admin"
    jcfg = (rendered / "media-1/etc/cuntong/janus/janus.transport.http.jcfg").read_text()
    assert 'admin_ip = "10.20.0.31"' in jcfg
    assert 'admin_acl = "127.,10.20.0.11,10.20.0.12"' in jcfg
    assert str(node.read_dir) == "/var/lib/cuntong/api/recordings/media-1"
    # Issue 17: no mount; the archiver fetches each room from the media host's recordings
    # server into read_dir (tests/teller/test_recordings_server.py runs both for real).
    assert node.recordings_url == "https://10.20.0.31:8091"
    assert api2["CUNTONG_CLOUD_TERMINAL_API_HOST"] == "10.20.0.12"  # enrolment on each API host
    # ...whose certificate also names the HAProxy address terminals connect to.
    assert api2["CUNTONG_CLOUD_TERMINAL_API_NAMES"] == "10.20.0.11"
    root = x509.load_pem_x509_certificate(
        (rendered / "cloud-1/var/lib/cuntong/api/ca/root.pem").read_bytes()
    )
    for host, address in (("broker-1", "10.20.0.21"), ("broker-2", "10.20.0.22")):
        conf = (rendered / host / "etc/cuntong/mosquitto/mosquitto.conf").read_text()
        assert f"listener 8883 {address}" in conf
        tls = rendered / host / "var/lib/cuntong/mosquitto/tls"
        assert (tls / "server-key.pem").stat().st_mode & 0o777 == 0o600
        chain = x509.load_pem_x509_certificates((tls / "server.pem").read_bytes())
        assert chain[-1].issuer == root.subject  # one CA for both brokers
        sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert address in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        dynsec = json.loads((tls / "dynsec.json").read_text())
        clients = {c["username"] for c in dynsec["clients"]}
        for instance in ("api-cloud-1", "ingest-cloud-1", "api-cloud-2"):
            assert f"svc.{instance}" in clients, sorted(clients)
    agent = _unit(rendered, "term-1", "agent")
    assert agent["AmbientCapabilities"] == ["CAP_SYS_NICE"]
    assert agent["LimitRTTIME"] == ["200ms:2s"]
    assert agent["EnvironmentFile"] == ["/etc/cuntong/agent/agent.env"]
    assert _env(rendered / "term-1/etc/cuntong/agent/agent.env") == {
        "CUNTONG_AGENT_TERMINAL_ID": "SX-00041"
    }
    tmpfiles = (rendered / "broker-1/etc/tmpfiles.d/cuntong.conf").read_text()
    assert "Z /var/lib/cuntong/mosquitto - cuntong-mosquitto cuntong-mosquitto -" in tmpfiles
    assert "u cuntong-agent " in (rendered / "term-1/etc/sysusers.d/cuntong.conf").read_text()


def test_render_serves_recordings_read_only_from_the_media_host(rendered: Path) -> None:
    """Issue 17: the recordings server's unit on the media host: its own user, Janus's group
    to read the recordings (Janus writes them 0640, the folder is 0750, its state folder
    only passable), nothing writable but its own state; its server certificate from the
    deployment CA for the host's address, private."""
    from cryptography import x509

    unit = _unit(rendered, "media-1", "recordings")
    assert unit["User"] == ["cuntong-recordings"]
    assert unit["SupplementaryGroups"] == ["cuntong-janus"]
    assert unit["ExecStart"] == [
        f"{sys.prefix}/bin/cuntong recordings serve --dir /var/lib/cuntong/janus/recordings"
        " --host 10.20.0.31 --port 8091 --tls /var/lib/cuntong/recordings/tls"
    ]
    assert unit["ReadWritePaths"] == ["/var/lib/cuntong/recordings"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert _unit(rendered, "media-1", "janus")["UMask"] == ["0027"]
    tmpfiles = (rendered / "media-1/etc/tmpfiles.d/cuntong.conf").read_text().splitlines()
    assert "d /var/lib/cuntong/janus 0710 cuntong-janus cuntong-janus -" in tmpfiles
    assert "d /var/lib/cuntong/janus/recordings 0750 cuntong-janus cuntong-janus -" in tmpfiles
    assert "Z /var/lib/cuntong/recordings - cuntong-recordings cuntong-recordings -" in tmpfiles
    users = (rendered / "media-1/etc/sysusers.d/cuntong.conf").read_text()
    assert "u cuntong-recordings " in users
    tls = rendered / "media-1/var/lib/cuntong/recordings/tls"
    for name in ("cert.pem", "key.pem", "ca.pem"):
        assert (tls / name).stat().st_mode & 0o777 == 0o600
    assert tls.stat().st_mode & 0o777 == 0o700
    chain = x509.load_pem_x509_certificates((tls / "cert.pem").read_bytes())
    root = (rendered / "cloud-1/var/lib/cuntong/api/ca/root.pem").read_bytes()
    assert (tls / "ca.pem").read_bytes() == root  # the one CA the cloud's certs come from
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.20.0.31" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    # Only media hosts run it.
    assert not (rendered / "cloud-1/etc/systemd/system/cuntong-recordings.service").exists()


def test_render_again_keeps_the_secrets(rendered: Path, tmp_path: Path) -> None:
    before = (rendered / "secrets.json").read_text()
    done = _cuntong(
        "deploy", "render", "--inventory", str(tmp_path / "inventory.toml"), "--out", str(rendered)
    )
    assert done.returncode == 0 and (rendered / "secrets.json").read_text() == before


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_units(rendered: Path, tmp_path: Path) -> None:
    units = sorted(str(p) for p in rendered.glob("*/etc/systemd/system/*.service"))
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # ... and the same check refuses a broken one, so it is not a check that cannot fail.
    broken = tmp_path / "cuntong-broken.service"
    broken.write_text(
        Path(units[0]).read_text().replace("ExecStart=", "ExecStart=/nonexistent/x #")
    )
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_its_config(rendered: Path) -> None:
    cfg = rendered / "cloud-1/etc/cuntong/haproxy/haproxy.cfg"
    # the unit states the descriptors maxconn needs (2 x 20000 + 1000)
    unit = (rendered / "cloud-1/etc/systemd/system/cuntong-haproxy.service").read_text()
    assert "maxconn 20000" in cfg.read_text() and "LimitNOFILE=41000" in unit
    done = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_bad_inventory_is_named(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(INVENTORY.format(prefix="/opt/x").replace('"coturn"', '"cotrun"'))
    done = _cuntong("deploy", "render", "--inventory", str(inventory), "--out", str(tmp_path))
    assert done.returncode == 2 and "unknown role(s) cotrun" in done.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('terminal_id = "SX-00041"', 'terminal_id = "SX 41"', "terminal id 'SX 41' is not"),
        ('name = "broker-2"', 'name = "broker-1"', "listed twice: broker-1"),
        ('name = "broker-2"', 'name = "pki"', "'pki' is not a host name"),
        (
            'db_url = "postgres',
            'haproxy_maxconn = 0\ndb_url = "postgres',
            "haproxy_maxconn must be a positive whole number, not 0",
        ),
    ],
)
def test_a_bad_host_is_named_and_nothing_is_written(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    from cuntong.deploy import render_inventory

    inventory = tmp_path / "inventory.toml"
    inventory.write_text(INVENTORY.format(prefix="/opt/x").replace(old, new))
    with pytest.raises(ConfigError, match=message):
        render_inventory(inventory, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sd_notify_speaks_to_a_datagram_socket(tmp_path: Path) -> None:
    for name in (str(tmp_path / "n.sock"), f"@cuntong-test-{os.getpid()}"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name[1:] if name.startswith("@") else name)
            assert sdnotify.notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": name})
            assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    assert not sdnotify.notify("READY=1", {})
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({}) is None


def test_the_api_reports_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        port = procs.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
        env |= {
            "NOTIFY_SOCKET": str(path),
            "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
            "CUNTONG_CLOUD_DB_URL": f"sqlite://{tmp_path / 'api.sqlite3'}",
            "CUNTONG_CLOUD_INGEST": "false",
            "CUNTONG_CLOUD_API_PORT": str(port),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "cuntong", "api"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            got = [sock.recv(4096)]
            assert got == [b"READY=1"]
            # Ready means serving: the port is open by now.
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            got += [sock.recv(4096) for _ in range(3)]
            assert got[1:] == [b"WATCHDOG=1"] * 3
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while (msg := sock.recv(4096)) == b"WATCHDOG=1" and time.monotonic() < deadline:
                pass
            assert msg == b"STOPPING=1"
            assert proc.wait(timeout=30) in (0, 130)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_terminal_agent_unit(tmp_path: Path) -> None:
    from cuntong.deploy import agent_unit

    unit = tmp_path / "cuntong-agent.service"
    unit.write_text(agent_unit(Path(sys.prefix)))
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "-m edge.launcher" in text
    # The liveness frame thread's real-time grant (tests/vision/test_frame_thread.py runs it).
    for line in (
        "AmbientCapabilities=CAP_SYS_NICE",
        "CapabilityBoundingSet=CAP_SYS_NICE",
        "LimitRTTIME=200ms:2s",
        "Environment=CUNTONG_AGENT_LIVENESS_RT_PRIORITY=10",
        "Environment=CUNTONG_AGENT_CALL_MEDIA_NICE=-10",  # the same grant (edge.teller.priority)
    ):
        assert line in text.splitlines()
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # verify only warns about a value it cannot parse: none may be ignored.
    assert "Failed to parse" not in done.stderr and "Unknown" not in done.stderr, done.stderr
    bad = tmp_path / "bad-rt-agent.service"
    bad.write_text(text.replace("LimitRTTIME=200ms:2s", "LimitRTTIME=soon"))
    done = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True)
    assert "Failed to parse" in done.stderr and "soon" in done.stderr
    broken = tmp_path / "broken-agent.service"
    broken.write_text(text.replace("Type=notify", "Type=nonsense"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True
    )
    assert done.returncode != 0 or "nonsense" in done.stderr
