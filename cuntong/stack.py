"""``cuntong up``: the whole system on one machine, as child processes.

Broker, telemetry store, Janus and coturn (the teller desk's media), cloud API (with ingest
and the desk) and N simulated terminals, each with config generated under the state folder.
One Janus node by default; ``CUNTONG_UP_JANUS_NODES=N`` (or ``Stack(janus_nodes=N)``) starts
N on distinct ports, sharing the RTP port range, all registered with the desk.
Prints the URLs; Ctrl-C (SIGINT) or SIGTERM stops everything in reverse order, each step
with a deadline after which the stragglers are killed (and named in the output). Its own
children (API, terminals, peripheral simulators) are supervised: one that exits is started
again with backoff; an agent that stops its watchdog pings (``$CUNTONG_UP_AGENT_WATCHDOG_S``,
default 30 s) is killed and started again (``cuntong.supervisor``). Children die with the
launcher even when it is killed outright (``common.procs``). Without Janus or coturn
installed the stack still runs, with the desk off (said at start).

``--api-replicas N`` (``Stack(api_replicas=N)``) starts N API processes on the one SQLite
file, each with its own service certificates (``api``, ``api-2`` …), and HAProxy in front
(``cuntong.deploy.haproxy_config``): the printed URLs are HAProxy's; the desk runs on the
replica holding the lease (``cloud.lease``). Only the first serves the terminals' enrolment
listener.

Services take their usual ports (8000, 8883, 8443 …) when free, else any free one;
``CUNTONG_UP_ANY_PORTS=1`` makes every one take any free port.

The ``CUNTONG_*`` environment passes through to the children: settings the stack does not
need to own (``CUNTONG_AGENT_TELEMETRY_INTERVAL_S``, the simulated customers' rate …) keep
the value the environment gives them; ports, folders, identities and the wiring between the
processes are the stack's and override the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from cloud.security import broker_services
from common import procs
from common.errors import ConfigError, CuntongError, MissingBinary
from corebank import CoreBankClient
from cuntong import demobank, demoid
from cuntong.demobank import DemoCard
from cuntong.deploy import haproxy_config
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.coturn import Coturn, CoturnConfig, host_addresses
from cuntong.servers.hsm import HsmServer
from cuntong.servers.idcheck import IdentityGateway, demo_identities, gateway_key
from cuntong.servers.janus import Janus, JanusConfig
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from cuntong.supervisor import Child, Supervisor, agent_watchdog
from firmware_adapters.iccard.pcscd import READER_NAME, VPCD_DRIVER, Pcscd, free_port_pair
from firmware_adapters.pinpad.adapter import PinPad
from hsm import HsmClient
from provisioning.files import ensure_private_dir, write_private
from provisioning.protocol import FactoryClaim, Region
from provisioning.wiring import secure_broker

#: Where the simulated terminals stand: Shaanxi villages, as in the 村村通 rollout.
SIM_VILLAGES: tuple[tuple[str, str, str, str], ...] = (
    ("陕西省", "西安市", "长安区", "王莽村"),
    ("陕西省", "宝鸡市", "陈仓区", "东风村"),
    ("陕西省", "咸阳市", "礼泉县", "袁家村"),
    ("陕西省", "渭南市", "富平县", "庄里村"),
    ("陕西省", "延安市", "宝塔区", "梁村"),
    ("陕西省", "汉中市", "勉县", "新铺村"),
    ("陕西省", "榆林市", "米脂县", "高西沟村"),
    ("陕西省", "安康市", "平利县", "龙头村"),
)


#: The demo accounts ``cuntong up`` makes (account -> role).
DEMO_ROLES = {
    "admin": "admin",
    "ops": "fleet_operator",
    "supervisor": "supervisor",
    "teller1": "teller",
    "teller2": "teller",
}
DEMO_TELLER_LANGUAGES = ("cmn", "zh-shaanxi")

#: How many local Janus nodes ``cuntong up`` starts when ``Stack.janus_nodes`` is 0.
JANUS_NODES_ENV = "CUNTONG_UP_JANUS_NODES"
#: The demo customer's account in the simulated core (``cuntong up`` opens it).
DEMO_ACCOUNT = "DEMO-0001"

#: Seconds each stage of the shutdown waits after SIGTERM before it kills the stragglers.
STOP_DEADLINE_S = 10.0

log = logging.getLogger("cuntong.up")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _already_stopping(signum: int, _frame: object) -> None:
    print(
        f"{signal.Signals(signum).name}: already stopping (each step is killed after "
        f"{STOP_DEADLINE_S:.0f}s)",
        flush=True,
    )


#: Set (not "" or "0"): every service on any free port, none on its usual one. For tests
#: beside other stacks on one machine: a usual port found free at start can be taken by the
#: time its service binds it, a minute later under load (seen: the API's 8443).
ANY_PORTS_ENV = "CUNTONG_UP_ANY_PORTS"


def _port(preferred: int) -> int:
    """The usual port when it is free, else any free one (a second stack, a busy laptop);
    always any free one with ``$CUNTONG_UP_ANY_PORTS``."""
    if os.environ.get(ANY_PORTS_ENV, "") not in ("", "0"):
        return procs.free_port()
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return procs.free_port()


@dataclass
class Stack:
    state_dir: Path
    terminals: int = 3
    #: The agents' sample period unless ``CUNTONG_AGENT_TELEMETRY_INTERVAL_S`` is set.
    telemetry_interval_s: float = 5.0
    supervisor: Supervisor = field(default_factory=Supervisor)
    enrol_port: int = 0
    people: dict[str, str] = field(default_factory=dict)
    #: Local Janus nodes for the desk; 0: ``$CUNTONG_UP_JANUS_NODES``, else 1.
    janus_nodes: int = 0
    #: The teller desk's media servers, when installed: janus-1, janus-2 … janus-N.
    janus: Janus | None = None
    more_janus: list[Janus] = field(default_factory=list)
    coturn: Coturn | None = None
    #: The money-moving services (docs/transactions.md): the cloud decides a call's card
    #: and PIN steps with them; the demo card and keys come from ``cuntong.demobank``.
    hsm: HsmServer | None = None
    core: CoreBankServer | None = None
    #: The card issued to the demo customer (None: not issued, ``card_note`` says why).
    demo_card: DemoCard | None = None
    #: Why SX-00001's card or PIN step cannot be decided by the HSM ("" when it can).
    card_note: str = ""
    #: The citizen-identity gateway simulator the cloud's online check asks (docs/identity.md).
    idcheck: IdentityGateway | None = None
    #: API processes on the one database; more than one runs HAProxy in front of them.
    api_replicas: int = 1

    def run(self) -> None:
        self.node_count()  # a bad node count stops the stack before anything starts
        if self.api_replicas < 1:
            raise ConfigError(f"--api-replicas must be at least 1, not {self.api_replicas}")
        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The default stack is secured: an mTLS-only broker with per-terminal ACLs, and
        # terminals that enrol with a factory claim (see docs/provisioning.md).
        cfg, _ = secure_broker(
            self.pki_dir,
            _port(8883),
            datetime.now(UTC),
            services=broker_services(*self.instances),
        )
        broker = Broker(cfg, self.state_dir / "mosquitto")
        vm = VictoriaMetrics(_port(8428), self.state_dir / "victoria-metrics" / "data")
        api_port = _port(8000)  # HAProxy's, with replicas
        self.enrol_port = _port(8443)
        # The first terminal's customer screen: a person at the demo plays the customer.
        self.screen_port = _port(8090)
        # Explicitly: a background job of a non-interactive shell (nohup, CI runners)
        # inherits SIGINT as ignored, and Python would then never raise KeyboardInterrupt.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            broker.start()
            vm.start()
            self.start_media(api_port)
            self.start_money_services()
            self.start_identity_gateway()
            self._start_apis(broker, vm, api_port)
            self._factory_claims(
                f"http://127.0.0.1:{api_port}", f"https://127.0.0.1:{self.enrol_port}"
            )
            for i in range(self.terminals):
                self._start_agent(i, with_devices=(i == 0))
            self._print_urls(broker, vm, api_port)
            self._watch()
        except KeyboardInterrupt:
            print("\nstopping …", flush=True)
        finally:
            for sig in previous:
                signal.signal(sig, _already_stopping)
            stuck = self.stop_children()
            self.stop_media()
            for service in (self.core, self.hsm):
                if service is not None:
                    service.stop()
            vm.stop()
            broker.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if stuck:
                print("killed after the deadline:", ", ".join(stuck), flush=True)
            print("stopped; logs and data are in", self.state_dir, flush=True)

    def stop_children(self) -> list[str]:
        """Terminals and their simulators first (they say goodbye through the broker),
        then the API; each stage SIGKILLs what is left after ``STOP_DEADLINE_S``."""
        api = [c for c in self.supervisor.children if c.name.startswith("api")]
        rest = [c for c in self.supervisor.children if not c.name.startswith("api")]
        stuck = Supervisor(rest).stop(STOP_DEADLINE_S) + Supervisor(api).stop(STOP_DEADLINE_S)
        for name in stuck:
            log.warning("%s did not stop within %.0fs of SIGTERM: killed", name, STOP_DEADLINE_S)
        return stuck

    def _env(self, defaults: dict[str, object], **owned: object) -> dict[str, str]:
        """The children's environment: ours, then ``defaults`` where it says nothing, then
        the ``owned`` wiring (ports, folders, identities) over everything."""
        env = dict(os.environ)
        for key, value in defaults.items():
            env.setdefault(key, str(value))
        env.update({k: str(v) for k, v in owned.items()})
        return env

    @property
    def db_url(self) -> str:
        return f"sqlite://{self.state_dir / 'cloud.sqlite3'}"

    def _people(self) -> dict[str, str]:
        """Demo accounts, made once (passwords kept 0600): admin, fleet operator, supervisor
        and two tellers who serve every business in Mandarin and the Shaanxi dialect. A
        state folder from before the tellers existed gets them added."""
        path = self.pki_dir / "demo-accounts.json"
        known = dict(json.loads(path.read_text())) if path.exists() else {}
        missing = {a: r for a, r in DEMO_ROLES.items() if a not in known}
        if not missing:
            return known
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        passwords = {account: secrets.token_urlsafe(12) for account in missing}

        async def create() -> None:
            # Before the API starts, in this process: one database open for all of them.
            from cloud.auth.service import create_account
            from cloud.db import close_db, open_db
            from cloud.sessions import profiles

            await open_db(self.db_url)
            try:
                now = datetime.now(UTC)
                for account, role in missing.items():
                    await create_account(account, passwords[account], [role], now)
                    if role == "teller":
                        every = profiles.parse_skill_args(["*=3"])
                        await profiles.set_profile(account, every, DEMO_TELLER_LANGUAGES, now)
            finally:
                await close_db()

        asyncio.run(create())
        known |= passwords
        write_private(path, json.dumps(known, indent=2).encode())
        return known

    def node_count(self) -> int:
        """Janus nodes to start: ``janus_nodes``, else ``$CUNTONG_UP_JANUS_NODES``, else 1."""
        raw = self.janus_nodes or os.environ.get(JANUS_NODES_ENV, "1")
        try:
            count = int(raw)
        except ValueError:
            count = 0
        if count < 1:
            raise ConfigError(f"{JANUS_NODES_ENV}: {raw!r} is not a node count (1 or more)")
        return count

    def _janus_dir(self, i: int) -> Path:
        # Node janus-1 keeps the folder a one-node stack always had.
        return self.state_dir / ("janus" if i == 0 else f"janus-{i + 1}")

    def start_media(self, api_port: int) -> None:
        """Janus nodes (VideoRoom, recording) and coturn for the teller desk; skipped, with
        a message, where they are not installed."""
        count = self.node_count()
        for i in range(count):
            cfg = JanusConfig(
                # janus-1 on the usual ports, janus-2 on 8188/7188, janus-3 on 8288/7288 …
                _port(8088 + 100 * i),
                _port(7088 + 100 * i),
                # Shared media threads, one per core: bench/calls.py sustains 60 recorded
                # calls on 2 cores this way against ~50 with Janus's thread per handle.
                # Nodes on one machine share its cores.
                event_loops=max(1, (os.cpu_count() or 1) // count),
                # The teller page (served by the API) calls the Janus API from the browser.
                cors_origin=f"http://127.0.0.1:{api_port}",
            )
            try:
                node = Janus(cfg, self._janus_dir(i)).start()
            except MissingBinary as err:
                print(f"teller desk off: {err}", flush=True)
                return
            if i == 0:
                self.janus = node
            else:
                self.more_janus.append(node)
        try:
            # Relays only to this host's media nodes; every other private range is denied.
            turn = CoturnConfig(_port(3478), allowed_peer_ips=host_addresses())
            self.coturn = Coturn(turn, self.state_dir / "coturn").start()
        except MissingBinary as err:
            print(f"teller desk without TURN relay: {err}", flush=True)

    def stop_media(self) -> None:
        for media in (self.coturn, *reversed(self.more_janus), self.janus):
            if media is not None:
                media.stop()
        self.coturn, self.more_janus, self.janus = None, [], None

    def media_env(self) -> dict[str, object]:
        """The cloud's media settings: janus-1 in the ``janus_*`` settings, the other
        nodes as ``janus_nodes`` (JSON), TURN when coturn runs."""
        if self.janus is None:
            return {}
        env: dict[str, object] = {
            "CUNTONG_CLOUD_JANUS_URL": self.janus.url,
            "CUNTONG_CLOUD_JANUS_ADMIN_URL": self.janus.admin_url,
            "CUNTONG_CLOUD_JANUS_ADMIN_SECRET": self.janus.cfg.admin_secret,
            "CUNTONG_CLOUD_JANUS_ROOM_KEY": self.janus.cfg.room_admin_key,
            "CUNTONG_CLOUD_JANUS_REC_DIR": self._janus_dir(0) / "recordings",
            "CUNTONG_CLOUD_ARCHIVE_DIR": self.state_dir / "recordings",
        }
        if self.more_janus:
            nodes = [
                {
                    "name": f"janus-{i + 1}",
                    "url": node.url,
                    "admin_url": node.admin_url,
                    "admin_secret": node.cfg.admin_secret,
                    "room_key": node.cfg.room_admin_key,
                    "rec_dir": str(self._janus_dir(i) / "recordings"),
                }
                for i, node in enumerate(self.more_janus, 1)
            ]
            env["CUNTONG_CLOUD_JANUS_NODES"] = json.dumps(nodes)
        if self.coturn is not None:
            env["CUNTONG_CLOUD_TURN_SECRET"] = self.coturn.cfg.static_auth_secret
            env["CUNTONG_CLOUD_TURN_URLS"] = json.dumps([self.coturn.url])
        return env

    @property
    def instances(self) -> list[str]:
        """The API replicas' service instances (their broker certificates): api, api-2 …"""
        return ["api"] + [f"api-{i + 1}" for i in range(1, self.api_replicas)]

    def _start_apis(self, broker: Broker, vm: VictoriaMetrics, port: int) -> None:
        """One API on ``port``, or the replicas on ports of their own and HAProxy on it."""
        if self.api_replicas == 1:
            self._start_api(broker, vm, port)
            return
        apis = []
        for i, instance in enumerate(self.instances):
            own = procs.free_port()
            self._start_api(broker, vm, own, instance, enrol=(i == 0))
            apis.append((instance, "127.0.0.1", own))
        cfg = self.state_dir / "haproxy.cfg"
        # maxconn: HAProxy needs twice that many open files; a demo needs few.
        cfg.write_text(haproxy_config("127.0.0.1", port, apis, maxconn=2000))
        argv = [procs.find_binary("haproxy"), "-db", "-f", str(cfg)]
        child = Child("haproxy", argv, self.state_dir / "haproxy.log", self._env({}))
        proc = self.supervisor.add(child, time.monotonic()).proc
        procs.wait_for_port(port, "127.0.0.1", 15, proc)

    def _start_api(
        self,
        broker: Broker,
        vm: VictoriaMetrics,
        port: int,
        instance: str = "api",
        enrol: bool = True,
    ) -> None:
        self.people = self.people or self._people()
        env = self._env(
            # The whole simulated batch enrols from this one address at start.
            {"CUNTONG_CLOUD_ENROL_PER_MINUTE": max(20, 2 * self.terminals)},
            **self.media_env(),
            **self.core_env(),
            **self.hsm_env(),
            **self.idcheck_env(),
            CUNTONG_CLOUD_DB_URL=self.db_url,
            CUNTONG_CLOUD_BROKER_PORT=broker.cfg.port,
            CUNTONG_CLOUD_TSDB_URL=vm.url,
            CUNTONG_CLOUD_API_PORT=port,
            CUNTONG_CLOUD_STATE_DIR=self.pki_dir,
            CUNTONG_CLOUD_TERMINAL_API_PORT=self.enrol_port if enrol else 0,
            CUNTONG_CLOUD_ADMIN_TOKEN=self.admin_token,
            CUNTONG_CLOUD_SERVICE_INSTANCE=instance,
        )
        log_path = self.state_dir / f"{instance}.log"
        child = Child(instance, [sys.executable, "-m", "cuntong", "api"], log_path, env)
        proc = self.supervisor.add(child, time.monotonic()).proc
        assert proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"cloud API exited; see {log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    # The terminals' HTTPS listener is a second server in the same process and
                    # may answer a moment later; the factory reads the CA from it next.
                    if enrol:
                        left = max(1.0, deadline - time.monotonic())
                        procs.wait_for_port(self.enrol_port, "127.0.0.1", left, proc)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("cloud API did not become healthy in 30 s")

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "cloud"

    @property
    def admin_token(self) -> str:
        """The operator token, made once and kept (0600) so a restarted stack keeps it."""
        path = self.pki_dir / "admin-token"
        if not path.exists():
            self.pki_dir.mkdir(parents=True, exist_ok=True)
            write_private(path, secrets.token_urlsafe(32).encode())
        return path.read_text().strip()

    @staticmethod
    def _tid(i: int) -> str:
        return f"SX-{i + 1:05d}"

    def _terminal_dir(self, tid: str) -> Path:
        return self.state_dir / "terminals" / tid

    def _factory_claims(self, api: str, enrol_url: str) -> None:
        """Play the factory: one batch claim, a claim file on each new simulated terminal."""
        new = [
            i
            for i in range(self.terminals)
            if not (self._terminal_dir(self._tid(i)) / "identity").exists()
        ]
        if not new:
            return
        auth = {"Authorization": f"Bearer {self.admin_token}"}
        # The factory runs on this host: the CA it hands terminals comes from the local
        # enrolment listener (the only one that serves enrolment), read before trusting it.
        ca_pem = httpx.get(f"{enrol_url}/api/v1/enrol/ca", timeout=10, verify=False).text
        created = httpx.post(
            f"{api}/api/v1/provisioning/claims",
            json={"uses": len(new), "days": 1, "id_prefix": "SX-", "label": "cuntong up"},
            headers=auth,
            timeout=10,
        )
        created.raise_for_status()
        for i in new:
            tid = self._tid(i)
            province, city, county, village = SIM_VILLAGES[i % len(SIM_VILLAGES)]
            claim = FactoryClaim(
                enrol_url=enrol_url,
                ca_pem=ca_pem,
                claim_token=created.json()["token"],
                terminal_id=tid,
                hardware_model="ZN-E100",
                region=Region(province=province, city=city, county=county, village=village),
            )
            folder = ensure_private_dir(self._terminal_dir(tid))
            write_private(folder / "claim.json", claim.model_dump_json(indent=2).encode())

    def _device_simulators(self, tid: str) -> tuple[Path, dict[str, str]]:
        """Serial ID reader and PIN pad simulators on pseudo-terminals, the bank card in a
        PC/SC reader (a private pcscd with vpcd and the emulated card), plus the synthetic
        camera: the first terminal drives the real adapters, byte for byte. Returns the
        peripherals file and what the agent's environment needs to reach the reader."""
        folder = self._terminal_dir(tid)
        links = {"idcard": folder / "idcard.tty", "pinpad": folder / "pinpad.tty"}
        more = {
            # the demo's ID cards, one per answer of the identity service; `cuntong demo
            # id-card` switches the one on the reader (cuntong.demoid)
            "idcard": demoid.write_deck(folder),
            # keys kept across the pad's restarts; the customer types what the demo's
            # customer file says (cuntong.demobank)
            "pinpad": ["--key-store", str(folder / "pinpad-keys.json"),
                       "--keys-file", str(self.customer_file)],
        }  # fmt: skip
        for kind, link in links.items():
            link.unlink(missing_ok=True)
            argv = [sys.executable, "-m", f"firmware_adapters.{kind}.simulator"]
            simulator = Child(
                f"{tid} {kind} simulator",
                [*argv, "--pty-link", str(link), *more[kind]],
                folder / f"{kind}-simulator.log",
            )
            self.supervisor.add(simulator, time.monotonic())
        deadline = time.monotonic() + 15
        while not all(link.exists() for link in links.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"peripheral simulators did not start; see {folder}")
            time.sleep(0.05)
        self.start_demo_bank(tid, links["pinpad"])
        reader_env = self.start_card_reader(tid)
        config = folder / "peripherals.json"
        config.write_text(
            json.dumps(
                {
                    "id_reader": {
                        "kind": "idcard",
                        "port": str(links["idcard"]),
                        "photo_decoder": "simulator",
                    },
                    "pin_pad": {"kind": "pinpad", "port": str(links["pinpad"]), "baudrate": 9600},
                    "card_reader": {"kind": "iccard", "reader": READER_NAME},
                    "camera": {"kind": "camera", "device": "synthetic"},
                },
                indent=2,
            )
        )
        return config, reader_env

    def _start_agent(self, i: int, with_devices: bool = False) -> None:
        province, city, county, village = SIM_VILLAGES[i % len(SIM_VILLAGES)]
        tid = self._tid(i)
        devices, reader_env = self._device_simulators(tid) if with_devices else (None, {})
        env = self._env(
            {
                "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": self.telemetry_interval_s,
                "CUNTONG_AGENT_SIMULATE": "true",
                **self._teller_env(i),
            },
            CUNTONG_AGENT_TERMINAL_ID=tid,
            CUNTONG_AGENT_STATE_DIR=self._terminal_dir(tid),
            CUNTONG_AGENT_PROVINCE=province,
            CUNTONG_AGENT_CITY=city,
            CUNTONG_AGENT_COUNTY=county,
            CUNTONG_AGENT_VILLAGE=village,
            **({"CUNTONG_AGENT_PERIPHERALS_FILE": devices} if devices else {}),
            **({"CUNTONG_AGENT_SCREEN_PORT": self.screen_port} if self._screen(i) else {}),
            **reader_env,
        )
        # The launcher (as systemd starts it on a terminal): it runs the agent from its
        # current slot, so an agent update over the air takes effect in the demo too. The
        # agent's watchdog pings are heard, and a hung agent restarted, as under systemd.
        agent = Child(
            tid,
            [sys.executable, "-m", "edge.launcher"],
            self.state_dir / "terminals" / f"{tid}.log",
            env,
            watchdog=agent_watchdog(os.environ),
        )
        self.supervisor.add(agent, time.monotonic())

    def _screen(self, i: int) -> bool:
        return self.janus is not None and i == 0

    def _teller_env(self, i: int) -> dict[str, object]:
        """Terminal 1 serves its customer screen; terminals 2 and 3 hold simulated
        customers who ask for a teller every few minutes (without face-aware video, to
        spare the demo machine's cores)."""
        if self.janus is None:
            return {}
        if 1 <= i <= 2:
            return {
                "CUNTONG_AGENT_SIM_TELLER_EVERY_S": 240,
                "CUNTONG_AGENT_FACE_AWARE": "false",
            }
        return {}

    def _print_urls(self, broker: Broker, vm: VictoriaMetrics, api_port: int) -> None:
        api = f"http://127.0.0.1:{api_port}"
        desk = (
            f"{api}/teller  (log in as teller1 or teller2; media signalling "
            f"through {api}/media/janus/<node> to {self._janus_urls()})"
            if self.janus is not None
            else "off (Janus not installed)"
        )
        print(
            "\ncuntong is running:\n"
            f"  fleet dashboard   {api}/fleet  (log in as ops or admin)\n"
            f"  teller desk       {desk}\n"
            f"  supervisor watch  {api}/teller/watch  (listen in on calls; log in as supervisor)\n"
            f"  customer screen   {self._screen_url()}\n"
            f"  API docs          {api}/docs\n"
            f"  terminals         {api}/api/v1/terminals\n"
            f"  one terminal      {api}/api/v1/terminals/SX-00001\n"
            f"  its telemetry     {api}/api/v1/terminals/SX-00001/telemetry?minutes=10\n"
            f"  health            {api}/healthz\n"
            f"  big screen        {api}/api/v1/ops/screen\n"
            f"  accounts          {', '.join(self.people)} (passwords in "
            f"{self.pki_dir / 'demo-accounts.json'}; POST {api}/api/v1/auth/login)\n"
            f"  telemetry store   {vm.url}/vmui  (VictoriaMetrics, PromQL)\n"
            f"  terminal enrolment https://127.0.0.1:{self.enrol_port}/api/v1/enrol  (our CA)\n"
            f"  MQTT broker       mqtts://127.0.0.1:{broker.cfg.port}  (MQTT 5, mTLS only)\n"
            f"{self._money_urls() if self.core is not None else ''}"
            f"{self._idcheck_url()}"
            f"  operator token    {self.pki_dir / 'admin-token'}  (Bearer, for "
            f"{api}/api/v1/provisioning/…)\n"
            f"{self._replicas_line()}"
            f"  simulated terminals: {self.terminals}; state and logs in {self.state_dir}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )

    def _replicas_line(self) -> str:
        if self.api_replicas == 1:
            return ""
        return (
            f"  API replicas      {self.api_replicas} behind HAProxy (the URLs above; logs "
            f"{', '.join(i + '.log' for i in self.instances)}; the desk runs on the one "
            "whose /healthz/leader is 200)\n"
        )

    def start_money_services(self) -> None:
        """The HSM service over SoftHSM2 (when installed) and the core-banking simulator."""
        try:
            procs.find_binary("softhsm2-util")
        except MissingBinary:
            self.hsm = None
        else:
            self.hsm = HsmServer(_port(7700), self.state_dir / "hsm").start()
        self.core = CoreBankServer(_port(7800), self.state_dir / "corebank").start()
        # The demo customer's account in the simulated core (what a teller types for a
        # card_loss, whose customer has no card to read).
        httpx.post(
            f"{self.core.url}/v1/accounts",
            json={"account": DEMO_ACCOUNT, "balance_fen": 100_000},
            headers={"Authorization": f"Bearer {self.core.secret}"},
            timeout=10,
        ).raise_for_status()

    def start_identity_gateway(self) -> None:
        """The identity-gateway simulator, supervised like the terminals (started again if
        it exits; stopped with them)."""
        folder = self.state_dir / "idcheck"
        self.idcheck = IdentityGateway(_port(7900), folder, gateway_key(folder), demo_identities())
        child = Child("identity gateway", self.idcheck.argv(), folder / "idcheck.log")
        proc = self.supervisor.add(child, time.monotonic()).proc
        procs.wait_for_port(self.idcheck.port, self.idcheck.host, 15, proc)

    def idcheck_env(self) -> dict[str, object]:
        """The cloud's ``id_online_check`` goes to the simulator, when it runs."""
        if self.idcheck is None:
            return {}
        return {
            "CUNTONG_CLOUD_IDCHECK_URL": self.idcheck.url,
            "CUNTONG_CLOUD_IDCHECK_KEY": self.idcheck.key.decode(),
        }

    def _idcheck_url(self) -> str:
        if self.idcheck is None:
            return ""
        return (
            f"  identity gateway  {self.idcheck.url}  (联网核查 simulator; key in "
            f"{self.idcheck.work_dir / 'gateway.key'}; identities in docs/identity.md)\n"
        )

    def core_env(self) -> dict[str, object]:
        """The cloud's core-banking settings (the simulator), when it runs."""
        if self.core is None:
            return {}
        return {
            "CUNTONG_CLOUD_CORE_URL": self.core.url,
            "CUNTONG_CLOUD_CORE_SECRET_FILE": self.core.state_dir / "core.secret",
        }

    def _money_urls(self) -> str:
        hsm = (
            f"{self.hsm.url}  (secret in {self.hsm.state_dir / 'hsm.secret'})"
            if self.hsm is not None
            else "off (softhsm2 not installed)"
        )
        core = f"{self.core.url}  (secret in {self.core.state_dir / 'core.secret'})"
        return (
            f"  HSM service       {hsm}\n"
            f"  core simulator    {core}\n"
            f"                    demo account {DEMO_ACCOUNT}; the teller's confirm posts to "
            "the core\n"
            f"{self._card_lines()}"
        )

    def _card_lines(self) -> str:
        """The demo card, or why a call's card and PIN steps need a supervisor's override."""
        if self.demo_card is not None and not self.card_note:
            card = self.demo_card
            return (
                f"  demo card         {card.masked} in SX-00001's card reader, account "
                f"{card.account}; PIN pad keyed from the HSM\n"
                f"                    its PIN (and what the simulated customer types on the pad)\n"
                f"                    in {card.customer_file}; card_read and pin_entry are\n"
                "                    decided by the HSM and the core\n"
            )
        note = self.card_note or "no demo card was issued"
        return (
            f"  demo card         off: {note}\n"
            "                    a call's card and PIN steps wait for a supervisor's override\n"
        )

    @property
    def customer_file(self) -> Path:
        """The demo customer's card, account and PIN (0600), next to the demo accounts."""
        return self.pki_dir / "demo-card.json"

    def hsm_env(self) -> dict[str, object]:
        """The cloud's HSM settings (card and PIN steps; the fleet's PIN key rotation)."""
        if self.hsm is None:
            return {}
        secret = self.hsm.state_dir / "hsm.secret"
        return {
            "CUNTONG_CLOUD_HSM_URL": self.hsm.url,
            "CUNTONG_CLOUD_HSM_SECRET_FILE": secret,
            "CUNTONG_CLOUD_HSM_IMK": demobank.IMK,
            "CUNTONG_CLOUD_HSM_PVK": demobank.PVK,
            "CUNTONG_FLEET_HSM_URL": self.hsm.url,
            "CUNTONG_FLEET_HSM_SECRET_FILE": secret,
        }

    def start_demo_bank(self, tid: str, pad_link: Path) -> None:
        """Key ``tid``'s PIN pad from the HSM and issue the demo card (``cuntong.demobank``);
        without an HSM or on a failure, ``card_note`` says why and the demo goes on."""
        if self.hsm is None or self.core is None:
            self.card_note = "no HSM service (softhsm2 not installed)"
            return
        hsm, core = self.hsm, self.core
        bank_dir = ensure_private_dir(self.state_dir / "bank")

        async def issue() -> DemoCard:
            async with (
                HsmClient(hsm.url, hsm.secret) as client,
                CoreBankClient(core.url, core.secret, timeout=10.0) as core_client,
                httpx.AsyncClient(
                    base_url=core.url, headers={"Authorization": f"Bearer {core.secret}"},
                    timeout=10,
                ) as core_admin,
                PinPad("pinpad", str(pad_link), 9600, timeout=5.0) as pad,
            ):  # fmt: skip
                await demobank.key_pad(client, pad, tid)
                return await demobank.issue_card(
                    client, core_client, core_admin, pad, tid, DEMO_ACCOUNT,
                    bank_dir / "card.json", self.customer_file,
                )  # fmt: skip

        try:
            self.demo_card = asyncio.run(issue())
        except (CuntongError, OSError, httpx.HTTPError, RuntimeError) as err:
            log.exception("demo card not issued")
            self.card_note = f"the demo card was not issued ({type(err).__name__}: {err})"

    def start_card_reader(self, tid: str) -> dict[str, str]:
        """pcscd with the vpcd reader and the demo card in it, supervised: in a mount
        namespace of its own, so the machine's pcscd (one per machine, at /run/pcscd) and
        other users of it are left alone. The agent's environment to reach it; on a failure
        ``card_note`` says why (the card step then fails, saying the reader is missing)."""
        folder = self.state_dir / "pcscd"
        daemon = Pcscd(free_port_pair(), folder, private=True)
        if self.demo_card is None:
            return daemon.client_env()
        missing = [b for b in ("pcscd", "unshare") if shutil.which(b) is None]
        if missing or not VPCD_DRIVER.exists():
            what = ", ".join(missing) or str(VPCD_DRIVER)
            self.card_note = (
                f"no PC/SC card reader ({what} missing: apt-get install pcscd vsmartcard-vpcd)"
            )
            return daemon.client_env()
        argv = [sys.executable, "-m", "firmware_adapters.iccard.pcscd", "--private",
                "--port", str(daemon.port), "--state-dir", str(folder),
                "--card", str(self.state_dir / "bank" / "card.json")]  # fmt: skip
        log_path = self.state_dir / "pcscd.log"
        child = self.supervisor.add(Child(f"{tid} card reader", argv, log_path), time.monotonic())
        deadline = time.monotonic() + 20
        while "with reader" not in log_path.read_text(errors="replace"):
            proc = child.proc
            if proc is None or proc.poll() is not None or time.monotonic() > deadline:
                self.supervisor.children.remove(child)
                if proc is not None:
                    procs.stop(proc)
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                self.card_note = f"the card reader did not start ({' '.join(tail)}; see {log_path})"
                break
            time.sleep(0.1)
        return daemon.client_env()

    def _janus_urls(self) -> str:
        nodes = [n for n in (self.janus, *self.more_janus) if n is not None]
        return ", ".join(n.url for n in nodes)

    def _screen_url(self) -> str:
        if self.janus is None:
            return "off (no teller desk)"
        return f"http://127.0.0.1:{self.screen_port}/  (terminal SX-00001: press 视频柜员)"

    def _watch(self) -> None:
        """Until a signal: start again, with backoff, any child that exited."""
        while True:
            time.sleep(0.5)
            self.supervisor.tick(time.monotonic(), random.random())
