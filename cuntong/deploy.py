"""``cuntong deploy render``: systemd units and configuration for every host of an inventory.

The inventory (TOML) names the hosts and their roles::

    [deployment]
    prefix = "/opt/cuntong"                 # the virtualenv holding bin/cuntong
    db_url = "postgres://cuntong@10.20.0.5:5432/cuntong"
    haproxy_maxconn = 20000                 # optional; the unit's LimitNOFILE follows it

    [[hosts]]
    name = "cloud-1"
    address = "10.20.0.11"
    roles = ["api", "ingest", "haproxy"]

Roles: api, ingest, mosquitto, janus, coturn, victoria-metrics, haproxy, terminal. Several
hosts may have the ``mosquitto`` role: each runs its own broker (no clustering), and the
cloud is configured with all of them in inventory order (``CUNTONG_CLOUD_BROKERS``), which
is the ordered list terminals get at enrolment and fail over along. A ``terminal`` host
gets the edge agent's unit (``agent_unit``); its terminal id is the host's ``terminal_id``
(default: its name). For each host the render writes, under ``OUT/<host>/``, the files to
copy to ``/``:

- ``etc/systemd/system/cuntong-<role>.service``: ``Restart=always``; ``Type=notify`` where the
  program tells systemd it is ready (the API and ingest through ``common.sdnotify``, which also
  pings ``WatchdogSec``; Mosquitto, coturn and HAProxy ``-Ws`` through their own libsystemd);
- ``etc/sysusers.d/cuntong.conf``: one system user per service (``cuntong-<role>``), no root;
- ``etc/tmpfiles.d/cuntong.conf``: their state folders 0700, and every secret file 0600 owned by
  its service's user (systemd-tmpfiles applies it at boot and at install);
- ``etc/cuntong/<role>/…``: the configuration, made by the same code ``cuntong up`` uses;
- ``var/lib/cuntong/<role>/…``: the key material a service needs before its first start
  (0600 files in 0700 folders): on API and ingest hosts the CA and the cloud's signing keys,
  on each broker host its mTLS server certificate, CRL and dynamic-security state listing
  every cloud process of the inventory (``provisioning.broker.prepare``); on each media host
  the recordings server's certificate.

A media (``janus``) host also gets ``cuntong-recordings.service``: ``cuntong recordings
serve`` (``cloud.media.recserve``), which lets the cloud's archiver fetch a finished call's
``.mjr`` files over HTTPS with mutual TLS (no shared filesystem). Its user reads Janus's
recordings folder through Janus's group (``SupplementaryGroups=``; Janus writes with
``UMask=0027``, the folder is 0750) and can write nothing there; the cloud's nodes carry
``recordings_url`` and stage each room in their ``read_dir`` before archiving it.

With a ``haproxy`` host, HAProxy fronts the operators' plain HTTP (port 80) and passes the
terminals' TLS through from its own port 9443 to every API host's listener (port 8443); the
claims' ``enrol_url`` is then ``https://<haproxy address>:9443`` (``enrol_url``, printed by
the render).

The CA and keys are made once in ``OUT/pki`` (0700) and kept, like the secrets.

Secrets (admin token, Janus secrets, TURN secret) are made once and kept in ``OUT/secrets.json``
(0600), so rendering again keeps them.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.topics import valid_terminal_id

ROLES = (
    "api",
    "ingest",
    "mosquitto",
    "janus",
    "coturn",
    "victoria-metrics",
    "haproxy",
    "terminal",
)
ETC = Path("/etc/cuntong")
STATE = Path("/var/lib/cuntong")
#: HAProxy's connection limit unless the inventory sets ``haproxy_maxconn``.
HAPROXY_MAXCONN = 20000
#: Seconds systemd waits for a WATCHDOG=1 before it restarts the API or ingest.
WATCHDOG_S = 30

PORTS = {
    "api": 8000,
    "mosquitto": 8883,
    "tsdb": 8428,
    "janus": 8088,
    "janus_admin": 7088,
    "turn": 3478,
    "haproxy": 80,
    "terminal_api": 8443,
    #: HAProxy's TLS passthrough to the API hosts' terminal listeners: a port of its own, so
    #: HAProxy and an API replica can share a host (a one-host inventory).
    "terminal_lb": 9443,
    "recordings": 8091,
}
#: The unit beside Janus on a media host that serves its recordings (not an inventory role).
RECORDINGS = "recordings"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    #: A ``terminal`` host's terminal id (the agent's ``CUNTONG_AGENT_TERMINAL_ID``).
    terminal_id: str = ""


def load_inventory(path: Path) -> tuple[dict[str, Any], list[Host]]:
    """The ``[deployment]`` table and the hosts; a clear ConfigError for what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"inventory {path}: {err}") from err
    deployment = data.get("deployment", {})
    for key in ("prefix", "db_url"):
        if not deployment.get(key):
            raise ConfigError(f"inventory {path}: [deployment] needs {key!r}")
    maxconn = deployment.get("haproxy_maxconn", HAPROXY_MAXCONN)
    if not isinstance(maxconn, int) or isinstance(maxconn, bool) or maxconn < 1:
        raise ConfigError(
            f"inventory {path}: [deployment] haproxy_maxconn must be a positive whole number,"
            f" not {maxconn!r}"
        )
    hosts = []
    for index, raw in enumerate(data.get("hosts", [])):
        for key in ("name", "address", "roles"):
            if not raw.get(key):
                raise ConfigError(f"inventory {path}: hosts[{index}] needs {key!r}")
        unknown = sorted(set(raw["roles"]) - set(ROLES))
        if unknown:
            raise ConfigError(
                f"inventory {path}: host {raw['name']!r} has unknown role(s) {', '.join(unknown)}"
                f" (known: {', '.join(ROLES)})"
            )
        terminal_id = ""
        if "terminal" in raw["roles"]:
            terminal_id = str(raw.get("terminal_id") or raw["name"])
            if not valid_terminal_id(terminal_id):
                raise ConfigError(
                    f"inventory {path}: host {raw['name']!r}: terminal id {terminal_id!r} is"
                    " not letters, digits, '-' and '_' (1-64 characters); set terminal_id"
                )
        hosts.append(Host(raw["name"], raw["address"], tuple(raw["roles"]), terminal_id))
    if not hosts:
        raise ConfigError(f"inventory {path}: no [[hosts]]")
    names = [h.name for h in hosts]
    if "pki" in names:
        raise ConfigError(f"inventory {path}: 'pki' is not a host name (the render's CA folder)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"inventory {path}: host name(s) listed twice: {', '.join(twice)}")
    for needed in ("api", "mosquitto", "victoria-metrics"):
        if not any(needed in h.roles for h in hosts):
            raise ConfigError(f"inventory {path}: no host has the {needed!r} role")
    return deployment, hosts


def _first(hosts: list[Host], role: str) -> Host | None:
    return next((h for h in hosts if role in h.roles), None)


def brokers(hosts: list[Host]) -> list[Host]:
    """The broker hosts in inventory order: the order terminals try them."""
    return [h for h in hosts if "mosquitto" in h.roles]


def service_instances(hosts: list[Host]) -> list[str]:
    """Every cloud process's service instance (``SERVICE_INSTANCE``): each has its own
    broker identity, so every broker's dynamic-security state lists them all."""
    return [f"{role}-{h.name}" for h in hosts for role in ("api", "ingest") if role in h.roles]


def _secrets(out: Path) -> dict[str, str]:
    path = out / "secrets.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    for name in ("admin_token", "janus_admin_secret", "janus_room_key", "turn_secret"):
        kept.setdefault(name, secrets.token_urlsafe(32))
    _write(path, json.dumps(kept, indent=1) + "\n", 0o600)
    return dict(kept)


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _unit(
    role: str,
    description: str,
    exec_start: str,
    *,
    notify: bool,
    watchdog: bool,
    extra: tuple[str, ...] = (),
) -> str:
    user = f"cuntong-{role}"
    lines = [
        "# generated by cuntong deploy render; edits are overwritten",
        "[Unit]",
        f"Description=cuntong {description}",
        "Wants=network-online.target",
        "After=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        f"Type={'notify' if notify else 'simple'}",
        f"User={user}",
        f"Group={user}",
        *extra,
        f"ExecStart={exec_start}",
        "Restart=always",
        "RestartSec=2",
        "TimeoutStartSec=60",
        "TimeoutStopSec=20",
        *([f"WatchdogSec={WATCHDOG_S}"] if watchdog else []),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={STATE / role}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _cloud_env(
    deployment: dict[str, Any], hosts: list[Host], host: Host, role: str, keys: dict[str, str]
) -> str:
    tsdb = _first(hosts, "victoria-metrics")
    turn = _first(hosts, "coturn")
    every = brokers(hosts)
    assert every and tsdb is not None  # load_inventory checked
    env: dict[str, object] = {
        "DB_URL": deployment["db_url"],
        "BROKER_HOST": every[0].address,
        "BROKER_PORT": PORTS["mosquitto"],
        # Every cloud link subscribes on each; terminals get the list, in this order.
        "BROKERS": ",".join(f"{b.address}:{PORTS['mosquitto']}" for b in every),
        "TSDB_URL": f"http://{tsdb.address}:{PORTS['tsdb']}",
        "API_HOST": host.address,
        "API_PORT": PORTS["api"],
        "STATE_DIR": STATE / role,
        "SERVICE_INSTANCE": f"{role}-{host.name}",
        "ADMIN_TOKEN": keys["admin_token"],
        # On the API too, even beside an ingest unit: the fleet's command sender, rollouts
        # and alerting run only where ingest is on (``fleet.wiring.start``), so an API with
        # ingest off could send no command. Consumers share the telemetry (the shared
        # subscription); events each stores once by their (terminal, seq) key.
        "INGEST": "true",
    }
    if role == "api":
        # Terminals enrol and renew on every API host's HTTPS listener (certificate from
        # the CA, for this host's address).
        env |= {"TERMINAL_API_HOST": host.address, "TERMINAL_API_PORT": PORTS["terminal_api"]}
        lb = [h.address for h in hosts if "haproxy" in h.roles]
        if lb:
            # HAProxy passes terminals' TLS through on its port 9443 (claims' enrol_url is
            # https://<lb>:9443): this host's certificate must name the lb's address too.
            env["TERMINAL_API_NAMES"] = ",".join(lb)
    janus_hosts = [h for h in hosts if "janus" in h.roles]
    if janus_hosts:
        # One node per media host. Janus writes recordings on its own host; the archiver
        # (on the leading API host) fetches each finished room's files from that host's
        # recordings server (mutual TLS) into read_dir, in its own state folder, and
        # archives them from there.
        nodes = [
            {
                "name": j.name,
                "url": f"http://{j.address}:{PORTS['janus']}/janus",
                "admin_url": f"http://{j.address}:{PORTS['janus_admin']}/admin",
                "admin_secret": keys["janus_admin_secret"],
                "room_key": keys["janus_room_key"],
                "rec_dir": str(STATE / "janus" / "recordings"),
                "read_dir": str(STATE / role / "recordings" / j.name),
                "recordings_url": f"https://{j.address}:{PORTS['recordings']}",
            }
            for j in janus_hosts
        ]
        env["JANUS_NODES"] = json.dumps(nodes)
    if turn is not None:
        env |= {
            "TURN_SECRET": keys["turn_secret"],
            "TURN_URLS": json.dumps([f"turn:{turn.address}:{PORTS['turn']}?transport=udp"]),
        }
    # systemd's EnvironmentFile= drops double quotes: a JSON value goes in single quotes.
    return "".join(
        f"CUNTONG_CLOUD_{k}='{v}'\n" if '"' in str(v) else f"CUNTONG_CLOUD_{k}={v}\n"
        for k, v in env.items()
    )


#: Routes that need the teller desk (its board, live feed, sessions): only the replica
#: holding the cloud's lease runs it (``cloud.lease``), so they go to the ``desk`` backend.
DESK_PATHS = ("/api/v1/teller", "/api/v1/ops", "/api/v1/workflow", "/media/janus")


def haproxy_config(
    bind: str,
    port: int,
    apis: list[tuple[str, str, int]],
    maxconn: int = 20000,
    terminals: list[tuple[str, str, int]] | None = None,
    terminal_port: int = 0,
) -> str:
    """HAProxy in front of the API replicas (``apis``: name, address, port).

    Every route goes to any healthy replica (``/healthz``), except the desk's, which go to
    the one that leads (``/healthz/leader``). A replica that dies is out after two failed
    checks a second apart; meanwhile a refused connection is retried on another replica
    (``redispatch``), and an idempotent request that got no answer is too (a POST is not
    retried: it may have been applied).

    ``terminals`` (name, address, port of each API host's terminals' HTTPS listener): a
    second frontend on ``bind:terminal_port`` passes those TLS connections through
    untouched (``mode tcp``): terminals check the replica's CA-issued certificate end to
    end (HAProxy holds no key), and enrolment, renewal, log upload and the call gate work
    through any replica. Each replica's certificate names the HAProxy address
    (``CUNTONG_CLOUD_TERMINAL_API_NAMES``)."""
    check = "    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 1\n"
    retry = (
        "    retries 3\n    option redispatch 1\n"
        "    retry-on conn-failure empty-response response-timeout\n"
        "    http-request disable-l7-retry unless METH_GET\n"
    )
    servers = "".join(f"    server {name} {addr}:{p} check\n" for name, addr, p in apis)
    return (
        "# generated by cuntong deploy render; edits are overwritten\n"
        f"global\n    log stdout format raw local0\n    maxconn {maxconn}\n\n"
        "defaults\n    mode http\n    log global\n    option httplog\n"
        "    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n"
        "    # teller pages hold WebSockets open for a shift\n    timeout tunnel 12h\n\n"
        f"frontend cuntong\n    bind {bind}:{port}\n"
        f"    acl desk path_beg {' '.join(DESK_PATHS)}\n"
        "    use_backend desk if desk\n"
        "    default_backend api\n\n"
        "backend api\n    balance leastconn\n    option httpchk GET /healthz\n"
        "    http-check expect status 200\n" + retry + check + servers + "\n"
        "backend desk\n    option httpchk GET /healthz/leader\n"
        "    http-check expect status 200\n"
        + retry
        + check
        + servers
        + _tcp_terminals(bind, terminal_port, terminals or [])
    )


def _tcp_terminals(bind: str, port: int, terminals: list[tuple[str, str, int]]) -> str:
    """The terminals' HTTPS listener through HAProxy: TLS passthrough, a TCP check."""
    if not terminals:
        return ""
    servers = "".join(f"    server {name} {addr}:{p} check\n" for name, addr, p in terminals)
    return (
        f"\nfrontend terminals\n    mode tcp\n    option tcplog\n    bind {bind}:{port}\n"
        "    default_backend terminals\n\n"
        "backend terminals\n    mode tcp\n    balance leastconn\n"
        "    retries 3\n    option redispatch 1\n"
        "    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 1\n" + servers
    )


def _haproxy(hosts: list[Host], host: Host, maxconn: int) -> str:
    apis = [(h.name, h.address, PORTS["api"]) for h in hosts if "api" in h.roles]
    terminals = [(h.name, h.address, PORTS["terminal_api"]) for h in hosts if "api" in h.roles]
    return haproxy_config(
        host.address, PORTS["haproxy"], apis, maxconn, terminals, PORTS["terminal_lb"]
    )


def haproxy_nofile(maxconn: int) -> int:
    """The open-file limit HAProxy needs for ``maxconn``: two descriptors per proxied
    connection (client and server side) and room for its listeners, checks and logs. It
    refuses to start when it cannot raise its limit that far (``Cannot raise FD limit``:
    seen under a real systemd on a machine whose hard limit is 20000,
    tests/ops/test_systemd_units.py), so the unit states the need."""
    return 2 * maxconn + 1000


def _role_files(
    role: str, deployment: dict[str, Any], hosts: list[Host], host: Host, keys: dict[str, str]
) -> tuple[dict[str, tuple[str, int]], str]:
    """(config files under /etc/cuntong/<role>/ with their modes, the unit text)."""
    prefix = Path(deployment["prefix"])
    cfg = ETC / role
    if role in ("api", "ingest"):
        files = {"cloud.env": (_cloud_env(deployment, hosts, host, role, keys), 0o600)}
        extra = (f"EnvironmentFile={cfg / 'cloud.env'}",)
        if role == "api":
            # Each start brings the schema up to date (replicas take turns on a lock).
            extra += (f"ExecStartPre={prefix / 'bin' / 'cuntong'} db upgrade",)
        command = "api" if role == "api" else "ingest"
        unit = _unit(
            role,
            f"cloud {command}",
            f"{prefix / 'bin' / 'cuntong'} {command}",
            notify=True,
            watchdog=True,
            extra=extra,
        )
        return files, unit
    if role == "mosquitto":
        from provisioning import brokerplugin
        from provisioning.broker import BrokerFiles, broker_config, config_text

        tls = BrokerFiles(STATE / "mosquitto" / "tls")
        # The refusal plugin is compiled on the broker host before the first start (gcc,
        # mosquitto-dev and libmosquitto-dev installed there), once per source version.
        plugin = STATE / role / brokerplugin.plugin_name()
        src = cfg / "cuntong_refusals.c"
        build = " ".join(brokerplugin.compile_argv("/usr/bin/gcc", src, plugin))
        cfg_ = broker_config(PORTS["mosquitto"], tls, host.address, refusals=plugin)
        text = config_text(cfg_, STATE / role)
        text = "\n".join(
            f"user cuntong-{role}" if line.startswith("user ") else line
            for line in text.splitlines()
        )
        unit = _unit(
            role,
            "MQTT broker (Mosquitto)",
            f"/usr/sbin/mosquitto -c {cfg / 'mosquitto.conf'}",
            notify=True,
            watchdog=False,
            extra=(f"ExecStartPre=/bin/sh -c 'test -f {plugin} || {build}'",),
        )
        code = brokerplugin.source().decode()
        return {"mosquitto.conf": (text + "\n", 0o640), src.name: (code, 0o640)}, unit
    if role == "janus":
        from cuntong.servers.janus import JanusConfig, config_files, installed_modules

        jcfg = JanusConfig(
            PORTS["janus"],
            PORTS["janus_admin"],
            keys["janus_admin_secret"],
            keys["janus_room_key"],
            host=host.address,
            nat_1_1="",
            # The desk on every API host opens rooms and grants through the admin API.
            admin_host=host.address,
            admin_acl=",".join(["127.", *(h.address for h in hosts if "api" in h.roles)]),
        )
        files = {n: (t, 0o600) for n, t in config_files(jcfg, cfg, installed_modules()).items()}
        unit = _unit(
            role,
            "media server (Janus)",
            f"/usr/bin/janus -F {cfg} -C {cfg / 'janus.jcfg'} --disable-colors",
            notify=False,
            watchdog=False,
            # Recordings 0640: readable by its group (the recordings server), no one else.
            extra=("UMask=0027",),
        )
        return files, unit
    if role == RECORDINGS:
        tls = STATE / role / "tls"
        unit = _unit(
            role,
            "recordings server (read-only, mutual TLS)",
            f"{prefix / 'bin' / 'cuntong'} recordings serve --dir {STATE / 'janus' / 'recordings'}"
            f" --host {host.address} --port {PORTS['recordings']} --tls {tls}",
            notify=False,
            watchdog=False,
            extra=("SupplementaryGroups=cuntong-janus",),
        )
        return {}, unit
    if role == "coturn":
        from cuntong.servers.coturn import CoturnConfig
        from cuntong.servers.coturn import config_text as turn_text

        conf = CoturnConfig(
            PORTS["turn"], keys["turn_secret"], listen_ip=host.address, relay_ip=host.address
        )
        unit = _unit(
            role,
            "TURN relay (coturn)",
            f"/usr/bin/turnserver -c {cfg / 'turnserver.conf'}",
            notify=True,
            watchdog=False,
        )
        return {"turnserver.conf": (turn_text(conf, STATE / role), 0o600)}, unit
    if role == "victoria-metrics":
        unit = _unit(
            role,
            "telemetry store (VictoriaMetrics)",
            f"/usr/bin/victoria-metrics -storageDataPath={STATE / role} "
            f"-httpListenAddr={host.address}:{PORTS['tsdb']} -retentionPeriod=90d "
            "-dedup.minScrapeInterval=1ms",
            notify=False,
            watchdog=False,
        )
        return {}, unit
    if role == "terminal":
        env = f"CUNTONG_AGENT_TERMINAL_ID={host.terminal_id}\n"
        return {"agent.env": (env, 0o640)}, agent_unit(prefix, ETC / "agent" / "agent.env")
    # haproxy: -Ws is its systemd master-worker mode (it sends READY=1 itself).
    maxconn = deployment.get("haproxy_maxconn", HAPROXY_MAXCONN)
    unit = _unit(
        role,
        "API load balancer (HAProxy)",
        f"/usr/sbin/haproxy -Ws -f {cfg / 'haproxy.cfg'}",
        notify=True,
        watchdog=False,
        extra=(
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            f"LimitNOFILE={haproxy_nofile(maxconn)}",
        ),
    )
    return {"haproxy.cfg": (_haproxy(hosts, host, maxconn), 0o640)}, unit


def _key_material(hosts: list[Host], host: Host, out: Path, root: Path) -> list[Path]:
    """The CA's part of an installation: under ``root`` (the host's tree), the CA and the
    cloud's keys for its API and ingest, its broker's mTLS files. Private files 0600."""
    import datetime as dt
    import shutil

    from cloud.security import broker_services
    from provisioning import broker as broker_lib
    from provisioning import ca as ca_lib
    from provisioning import keys as keys_lib
    from provisioning.files import ensure_private_dir, write_private

    now = dt.datetime.now(dt.UTC)
    pki = ensure_private_dir(out / "pki")
    authority = ca_lib.load_or_create(pki, now)
    keys_lib.load_or_create(pki)
    written: list[Path] = []
    for role in host_units(host):
        state = root / str(STATE / role).lstrip("/")
        if role in ("api", "ingest"):
            for folder in ("ca", "keys"):
                dest = ensure_private_dir(state / folder)
                for src in sorted((pki / folder).iterdir()):
                    if src.is_file():
                        shutil.copy2(src, dest / src.name)
                        written.append(dest / src.name)
        elif role == RECORDINGS:
            tls = ensure_private_dir(state / "tls")
            key = ca_lib.new_key()
            issued = authority.issue_server(key.public_key(), (host.address, host.name), now)
            written.append(write_private(tls / "key.pem", ca_lib.key_pem(key)))
            written.append(write_private(tls / "cert.pem", issued.chain_pem))
            written.append(write_private(tls / "ca.pem", authority.root_pem))
        elif role == "mosquitto":
            files = broker_lib.prepare(
                authority,
                state / "tls",
                (host.address, host.name),
                now,
                services=broker_services(*service_instances(hosts)),
            )
            written += [files.cafile, files.certfile, files.keyfile, files.crlfile]
            written.append(files.dynsecfile)
    for path in written:
        ensure_private_dir(path.parent)
    return written


def host_units(host: Host) -> tuple[str, ...]:
    """The host's roles, and the recordings server beside Janus on a media host."""
    return (*host.roles, *((RECORDINGS,) if "janus" in host.roles else ()))


def render(deployment: dict[str, Any], hosts: list[Host], out: Path) -> list[Path]:
    """Write every host's files under ``out/<host>/``; return them."""
    keys = _secrets(out)
    written: list[Path] = []
    for host in hosts:
        root = out / host.name
        users, tmpfiles = [], []
        written += _key_material(hosts, host, out, root)
        for role in host_units(host):
            files, unit = _role_files(role, deployment, hosts, host, keys)
            role = "agent" if role == "terminal" else role  # cuntong-agent.service
            user = f"cuntong-{role}"
            written.append(_write(root / f"etc/systemd/system/cuntong-{role}.service", unit))
            users.append(f'u {user} - "cuntong {role}" {STATE / role}')
            if role == "janus":
                # Its group (the recordings server) may pass through and read recordings.
                tmpfiles.append(f"d {STATE / role} 0710 {user} {user} -")
                tmpfiles.append(f"d {STATE / role / 'recordings'} 0750 {user} {user} -")
            else:
                tmpfiles.append(f"d {STATE / role} 0700 {user} {user} -")
            if role in ("api", "ingest", "mosquitto", RECORDINGS):
                # The key material the render placed there: the service's own (modes kept).
                tmpfiles.append(f"Z {STATE / role} - {user} {user} -")
            tmpfiles.append(f"d {ETC / role} 0750 root {user} -")
            for name, (text, mode) in files.items():
                written.append(_write(root / str(ETC / role / name).lstrip("/"), text, mode))
                # Owned by the service's user; secrets (0600) readable by nobody else.
                tmpfiles.append(f"z {ETC / role / name} {mode:04o} {user} {user} -")
        written.append(_write(root / "etc/sysusers.d/cuntong.conf", "\n".join(users) + "\n"))
        written.append(_write(root / "etc/tmpfiles.d/cuntong.conf", "\n".join(tmpfiles) + "\n"))
    return written


#: SCHED_FIFO priority of the agent's liveness frame thread (edge.vision.frames): above
#: every ordinary thread, well below the kernel's own real-time threads (50 and up).
LIVENESS_RT_PRIORITY = 10
#: Nice value of the call's media send path while a call publishes (edge.teller.priority):
#: the same CAP_SYS_NICE grant; not real time, so LimitRTTIME does not bound it.
CALL_MEDIA_NICE = -10
#: CPU time a real-time thread may take without blocking before the kernel signals (soft)
#: and kills (hard) the agent; one frame takes ~10 ms and the thread blocks between frames.
LIVENESS_RT_TIME = "200ms:2s"


def agent_unit(prefix: Path, env_file: Path | None = None) -> str:
    """The terminal's unit: systemd starts ``edge.launcher``, which counts a trial start (or
    goes back to the previous slot) and execs the agent from the current slot. Exec keeps
    the agent the main process, so ``NotifyAccess=main`` takes its READY and watchdog
    pings; a hung agent is killed after ``WatchdogSec`` and started again, which on trial
    counts towards the rollback (docs/fleet.md, "Agent self-update").

    The liveness check's frame thread asks for SCHED_FIFO at ``LIVENESS_RT_PRIORITY``
    (``edge.vision.frames``). The unit gives the agent's user ``CAP_SYS_NICE`` as its only
    capability (ambient, so it survives the launcher's exec; the bounding set is that one
    capability; ``NoNewPrivileges`` stays) and bounds real-time use with ``LimitRTTIME=``:
    a frame that runs past the soft limit without blocking gets SIGXCPU, on which the agent
    moves the thread back to ordinary scheduling; past the hard limit the kernel kills the
    agent and systemd restarts it. (``LimitRTPRIO=`` would permit the policy without any
    capability; it is not used because it could not be exercised here: raising that hard
    limit needs CAP_SYS_RESOURCE, which the test machine's root lacks.)

    ``env_file``: an ``EnvironmentFile=`` with the terminal's own settings (its id), as
    ``deploy render`` writes for a ``terminal`` host."""
    return _unit(
        "agent",
        "terminal edge agent (A/B slots)",
        f"{prefix / 'bin' / 'python'} -m edge.launcher",
        notify=True,
        watchdog=True,
        extra=(
            "NotifyAccess=main",
            f"Environment=CUNTONG_AGENT_STATE_DIR={STATE / 'agent'}",
            f"Environment=CUNTONG_AGENT_LIVENESS_RT_PRIORITY={LIVENESS_RT_PRIORITY}",
            f"Environment=CUNTONG_AGENT_CALL_MEDIA_NICE={CALL_MEDIA_NICE}",
            *([f"EnvironmentFile={env_file}"] if env_file is not None else []),
            "AmbientCapabilities=CAP_SYS_NICE",
            "CapabilityBoundingSet=CAP_SYS_NICE",
            f"LimitRTTIME={LIVENESS_RT_TIME}",
            "RestrictRealtime=no",
            f"WorkingDirectory={STATE / 'agent'}",
        ),
    )


def enrol_url(hosts: list[Host]) -> str:
    """The ``enrol_url`` the factory writes into terminals' claims: HAProxy's TLS
    passthrough (any API replica answers) where the inventory has one, else the first API
    host's own listener (which then is the one place terminals renew and upload logs)."""
    lb = next((h for h in hosts if "haproxy" in h.roles), None)
    if lb is not None:
        return f"https://{lb.address}:{PORTS['terminal_lb']}"
    api = next(h for h in hosts if "api" in h.roles)
    return f"https://{api.address}:{PORTS['terminal_api']}"


def render_inventory(inventory: Path, out: Path) -> list[Path]:
    deployment, hosts = load_inventory(inventory)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # it holds every host's secrets
    return render(deployment, hosts, out)
