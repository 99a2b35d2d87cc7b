"""Experiment: which sequence makes Debian 12's Mosquitto 2.0.11 corrupt its session-expiry
list on SIGHUP (issue 14; docs/provisioning.md, "Broker reloads (issue 14)").

    .venv/bin/python bench/broker_reload.py [--valgrind] [SCENARIO ...]

Each scenario starts a fresh broker configured as the stack configures it
(``wiring.secure_broker``: mTLS, the dynamic-security plugin, persistence), runs its steps
with real MQTT 5 clients over mTLS, stops the broker with SIGTERM and prints the exit status.
A freed context does not always crash a small broker (its memory is often still intact), so
``--valgrind`` runs the broker under valgrind (Debian package ``valgrind``) and also prints
how many invalid reads/writes it saw and the first function named in each.

Steps: ``svc:A`` a service client ``svc.A`` with a persistent session (expiry ``--expiry``,
by default what the cloud's links ask: ``SESSION_NEVER_EXPIRES``) and a subscription;
``drop:A`` closes A's (or terminal A's) socket without DISCONNECT; ``back:A`` the same
client id connects again (session takeover); ``term:T`` terminal T gets its broker client
and connects as ``edge.agent`` does (persistent session with ``--terminal-expiry``, by
default the agent's ``SESSION_EXPIRY_S``, and a will); ``return:T`` terminal T connects
again after a drop (takeover);
``revoke:T`` deletes T's dynamic-security client (the broker kicks T); ``kick:T`` a
clean-start takeover of T's session (``RevocationPublisher.kick``, also what the cloud's
session sweep does to a terminal offline a week); ``cut:T`` the kick
without a takeover (``BrokerAdmin.cut_off``); ``hup`` SIGHUP; ``load`` 300 QoS 1 messages.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import re
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import procs
from common.mqtt_link import SESSION_NEVER_EXPIRES
from cuntong.servers.mosquitto import Broker
from edge.agent import SESSION_EXPIRY_S as AGENT_EXPIRY
from provisioning import ca as ca_lib
from provisioning import wiring
from provisioning.device import client_ssl_context, new_csr
from provisioning.dynsec import cut_off
from provisioning.files import write_private

SERVICES = {"a": "cloud", "c": "cloud", "admin": "admin"}

#: Named scenarios: the revocation as it was, as it is now, and one factor changed at a time.
SCENARIOS = {
    # A fleet as it always is at a reload: offline terminals and an offline service link;
    # afterwards one terminal and the service come back and the sweep ends another's session.
    # Run it with ``--terminal-expiry 604800 --expiry 600`` for the expiries used before.
    "fleet-reload": "svc:c svc:a term:T term:U term:V drop:a drop:T drop:U hup "
    "back:a return:T kick:U load",
    "revocation-before": "svc:c term:T revoke:T hup kick:T load",
    "revocation-now": "svc:c term:T revoke:T kick:T hup cut:T load",
    "no-reload": "svc:c term:T revoke:T kick:T load",
    "no-takeover": "svc:c term:T revoke:T hup load",
    "takeover-of-live-session": "svc:c term:T hup kick:T load",
    "offline-service-back-after-reload": "svc:c svc:a drop:a hup back:a load",
}


@dataclasses.dataclass
class Rig:
    pki: Path
    port: int
    expiry: int
    terminal_expiry: int
    live: dict[str, mqtt.Client] = dataclasses.field(default_factory=dict)

    def _connect(self, client_id: str, ctx: object, expiry: int, will: bool) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.tls_set_context(ctx)  # type: ignore[arg-type]
        c.connect_timeout = 60
        if will:
            c.will_set(f"cuntong/v1/t/{client_id}/status", b'{"online":false}', 1, True)
        props = Properties(PacketTypes.CONNECT)
        if expiry:
            props.SessionExpiryInterval = expiry
        c.connect("127.0.0.1", self.port, clean_start=not expiry, properties=props)
        c.loop_start()
        deadline = time.monotonic() + 60
        while not c.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{client_id}: no CONNACK")
            time.sleep(0.02)
        return c

    def service(self, name: str) -> mqtt.Client:
        ctx = wiring.service_tls_context(self.pki, name, dt.datetime.now(dt.UTC))
        c = self._connect(f"svc.{name}", ctx, self.expiry, will=False)
        c.subscribe("cuntong/v1/t/+/telemetry", qos=1)
        return c

    def terminal(self, tid: str, expiry: int) -> mqtt.Client:
        now = dt.datetime.now(dt.UTC)
        authority = ca_lib.load_or_create(self.pki, now)
        key = ca_lib.new_key()
        issued = authority.issue_device(new_csr(key, tid), tid, now, 1)
        folder = Path(tempfile.mkdtemp(dir=self.pki))
        ctx = client_ssl_context(
            write_private(folder / "ca.pem", authority.root_pem),
            write_private(folder / "cert.pem", issued.chain_pem),
            write_private(folder / "key.pem", ca_lib.key_pem(key)),
        )
        return self._connect(tid, ctx, expiry, will=True)

    def admin(self, commands: list[dict[str, object]]) -> None:
        admin = wiring.broker_admin(self.pki, "127.0.0.1", self.port, "admin")
        asyncio.run(admin.checked(commands))

    def step(self, step: str, broker: Broker) -> None:
        kind, _, arg = step.partition(":")
        if kind in ("svc", "back"):
            self.live[arg] = self.service(arg)
        elif kind == "term":
            admin = wiring.broker_admin(self.pki, "127.0.0.1", self.port, "admin")
            asyncio.run(admin.add_terminals([arg]))
            self.live[arg] = self.terminal(arg, self.terminal_expiry)
        elif kind == "return":
            self.live[arg] = self.terminal(arg, self.terminal_expiry)
        elif kind == "drop":
            client = self.live.pop(arg)
            client.loop_stop()
            client.socket().close()  # type: ignore[union-attr]
        elif kind == "revoke":
            admin = wiring.broker_admin(self.pki, "127.0.0.1", self.port, "admin")
            asyncio.run(admin.remove_terminals([arg]))
            self.live.pop(arg).loop_stop()
        elif kind == "kick":
            kicker = self.terminal(arg, 0)
            kicker.disconnect()
            kicker.loop_stop()
        elif kind == "cut":
            self.admin(cut_off(arg))
        elif kind == "hup":
            assert broker.proc is not None
            os.kill(broker.proc.pid, signal.SIGHUP)
            time.sleep(1.5)
        elif kind == "load":
            publisher = next(iter(self.live.values()))
            for k in range(300):
                size = 300 + (k * 53) % 500
                publisher.publish(f"cuntong/v1/t/x{k % 7}/telemetry", b"y" * size, qos=1)
            time.sleep(1)
        else:
            raise SystemExit(f"unknown step {step!r}")
        time.sleep(0.3)


def run(steps: list[str], expiry: int, terminal_expiry: int, valgrind: bool) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="cuntong-reload-"))
    wrapper = tmp / "bin" / "mosquitto"
    logs = tmp / "valgrind"
    if valgrind:
        logs.mkdir()
        wrapper.parent.mkdir()
        real = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
        wrapper.write_text(
            f'#!/bin/sh\nexec valgrind --error-exitcode=99 --log-file={logs}/%p.log {real} "$@"\n'
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        os.environ["PATH"] = f"{wrapper.parent}:{os.environ.get('PATH', '')}"
    try:
        pki = tmp / "cloud"
        cfg, _ = wiring.secure_broker(
            pki, procs.free_port(), dt.datetime.now(dt.UTC), services=SERVICES
        )
        broker = Broker(cfg, tmp / "mosquitto").start(timeout=60)
        rig = Rig(pki, cfg.port, expiry, terminal_expiry)
        for step in steps:
            rig.step(step, broker)
        for client in rig.live.values():
            client.disconnect()
            client.loop_stop()
        assert broker.proc is not None
        rc = procs.stop(broker.proc, timeout=60)
    finally:
        if valgrind:
            os.environ["PATH"] = os.environ["PATH"].split(":", 1)[1]
    verdict = f"SIGTERM exit {rc}"
    if valgrind:
        text = "".join(p.read_text() for p in logs.glob("*.log"))
        where = sorted(set(re.findall(r"Invalid \w+ of size \d+\n==\d+==    at \S+: (\w+)", text)))
        verdict += f"; valgrind: {text.count('Invalid ')} invalid accesses {where}"
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="*", help=f"names {sorted(SCENARIOS)} or steps")
    parser.add_argument("--valgrind", action="store_true")
    parser.add_argument(
        "--expiry", type=int, default=SESSION_NEVER_EXPIRES, help="service session expiry (s)"
    )
    parser.add_argument(
        "--terminal-expiry", type=int, default=AGENT_EXPIRY, help="terminal session expiry (s)"
    )
    args = parser.parse_args()
    chosen = args.scenario or list(SCENARIOS)
    for name in chosen:
        steps = SCENARIOS.get(name, name).split()
        verdict = run(steps, args.expiry, args.terminal_expiry, args.valgrind)
        print(f"{name:36} {verdict}", flush=True)
    print(
        "reproduce: .venv/bin/python bench/broker_reload.py"
        f" {'--valgrind ' * args.valgrind}--expiry {args.expiry}"
        f" --terminal-expiry {args.terminal_expiry} {' '.join(args.scenario)}"
    )


if __name__ == "__main__":
    main()
