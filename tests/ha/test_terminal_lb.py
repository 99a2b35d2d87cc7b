"""Terminals through HAProxy's TLS passthrough (``cuntong.deploy.haproxy_config`` with the
terminals' frontend, as ``cuntong deploy render`` writes it): a terminal enrols on the
HAProxy address with certificate verification on (each replica's certificate names that
address: ``CUNTONG_CLOUD_TERMINAL_API_NAMES``), the replica that served it is killed with
SIGKILL, and the terminal still renews (a request signed with its key) and reads its
broker list through the same address.

Real processes: an mTLS-only Mosquitto, VictoriaMetrics, two secured ``cuntong api`` on one
SQLite file and one CA, each with its terminals' HTTPS listener on its own loopback address,
and ``haproxy`` on a third.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cloud.security import broker_services
from common import procs
from cuntong.deploy import haproxy_config
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from provisioning import device, wiring
from tests.helpers import FACTORY_TOKEN, enrolled_link, eventually, start_cloud
from tests.integration.agents import new_id

#: Each replica's terminals' listener and HAProxy on their own loopback addresses, so the
#: HAProxy address is in a replica's certificate only through TERMINAL_API_NAMES.
REPLICA_HOSTS = ("127.0.0.2", "127.0.0.3")
LB_HOST = "127.0.0.4"


async def test_terminal_enrols_and_renews_through_haproxy_after_its_replica_dies(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    pki = tmp_path / "cloud"
    instances = ("api-a", "api-b")
    cfg, _ = wiring.secure_broker(
        pki, procs.free_port(), dt.datetime.now(dt.UTC), services=broker_services(*instances)
    )
    broker = Broker(cfg, tmp_path / "mosquitto").start()
    db = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    lb_port = procs.free_port()
    replicas, ports = [], []
    try:
        for i, (instance, host) in enumerate(zip(instances, REPLICA_HOSTS, strict=True)):
            ports.append(procs.free_port())
            replicas.append(
                start_cloud(
                    tmp_path,
                    db,
                    broker.cfg.port,
                    victoria.url,
                    create_operator=i == 0,
                    CUNTONG_CLOUD_STATE_DIR=str(pki),
                    CUNTONG_CLOUD_ADMIN_TOKEN=FACTORY_TOKEN,
                    CUNTONG_CLOUD_SERVICE_INSTANCE=instance,
                    CUNTONG_CLOUD_INGEST_CLIENT_ID=f"ingest-{instance}",
                    CUNTONG_CLOUD_TERMINAL_API_HOST=host,
                    CUNTONG_CLOUD_TERMINAL_API_PORT=str(ports[-1]),
                    CUNTONG_CLOUD_TERMINAL_API_NAMES=f"{LB_HOST},lb.cuntong.test",
                )
            )
        names = [f"api-{i}" for i in range(len(replicas))]
        apis = [
            (n, "127.0.0.1", int(r.url.rsplit(":", 1)[1]))
            for n, r in zip(names, replicas, strict=True)
        ]
        terminals = list(zip(names, REPLICA_HOSTS, ports, strict=True))
        conf = tmp_path / "haproxy.cfg"
        conf.write_text(
            haproxy_config(
                LB_HOST, procs.free_port(), apis, 2000, terminals=terminals, terminal_port=lb_port
            )
        )
        log = tmp_path / "haproxy.log"
        lb = procs.start([procs.find_binary("haproxy"), "-db", "-f", str(conf)], log)
        try:
            procs.wait_for_port(lb_port, host=LB_HOST, timeout=15, proc=lb)
            enrol_url = f"https://{LB_HOST}:{lb_port}"
            tid = new_id("LB")
            state = tmp_path / tid
            # The agent's own enrolment (establish), verifying the server against the
            # claim's root for the host name in enrol_url: the HAProxy address.
            link = await enrolled_link(replicas[0].url, state, tid, enrol_url)
            first_serial = link.identity.certificate().serial_number

            # HAProxy's TCP log names the replica that carried each connection, logged when
            # it closes: the CA read, then the enrolment (the port probe carried 0 bytes).
            async def carried(at_least: int) -> list[str] | None:
                found = [
                    m[0]
                    for m in re.findall(r"terminals terminals/(api-\d) \S+ (\d+) ", log.read_text())
                    if int(m[1]) > 0
                ]
                return found if len(found) >= at_least else None

            connections = await eventually(lambda: carried(2), timeout=15)
            server = connections[-1]
            victim = replicas[names.index(server)]
            victim.proc.kill()  # SIGKILL: no goodbye
            victim.proc.wait()

            # Renewal is signed with the terminal's current key (the request a terminal
            # authenticates); it goes through the same address and reaches the survivor,
            # whose certificate the client verifies for the HAProxy address again.
            claim = device.read_claim(state / "claim.json")
            async with device.enrolment_client(claim) as http:
                await device.renew(http, link.identity, dt.datetime.now(dt.UTC))
                assert link.identity.certificate().serial_number != first_serial
                assert await device.fetch_brokers(http)
            after = await eventually(lambda: carried(len(connections) + 1), timeout=15)
            print(f"terminal connections through HAProxy: {after} (killed {server})")
            assert set(after[len(connections) :]) == {next(n for n in names if n != server)}
        finally:
            procs.stop(lb)
    finally:
        for r in replicas:
            procs.stop(r.proc)
        broker.stop()
