"""coturn (``turnserver``) as a child process with time-limited REST credentials.

Terminals in village networks sit behind carrier-grade NAT; TURN relays their media when
no direct path to Janus works. coturn runs with ``use-auth-secret``: it shares one static
secret with the cloud, and the cloud hands each client a username ``<expiry>:<user>`` and
the HMAC of it (see ``cloud.media.turn``), so no per-user database and nothing to revoke.

``argv`` is pure; ``Coturn`` starts and stops the process in the shape of
``mosquitto.Broker``. ``allow_loopback_peers`` is for tests on one host only: in
production coturn must refuse to relay to its own loopback.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from common import procs


@dataclass(frozen=True, slots=True)
class CoturnConfig:
    port: int
    static_auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    realm: str = "cuntong"
    listen_ip: str = "127.0.0.1"
    relay_ip: str = "127.0.0.1"
    #: UDP ports for relayed allocations.
    relay_ports: tuple[int, int] = (49152, 65535)
    allow_loopback_peers: bool = False


def argv(binary: str, cfg: CoturnConfig, state_dir: Path) -> list[str]:
    """The ``turnserver`` command line; no config file, so nothing from /etc leaks in."""
    args = [
        binary,
        "-n",  # do not read /etc/turnserver/turnserver.conf
        f"--listening-ip={cfg.listen_ip}",
        f"--listening-port={cfg.port}",
        f"--relay-ip={cfg.relay_ip}",
        f"--min-port={cfg.relay_ports[0]}",
        f"--max-port={cfg.relay_ports[1]}",
        f"--realm={cfg.realm}",
        "--use-auth-secret",
        f"--static-auth-secret={cfg.static_auth_secret}",
        "--fingerprint",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-multicast-peers",
        f"--userdb={state_dir / 'turndb'}",
        f"--pidfile={state_dir / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
    ]
    if cfg.allow_loopback_peers:
        args.append("--allow-loopback-peers")
    return args


@dataclass
class Coturn:
    cfg: CoturnConfig
    state_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:{self.cfg.listen_ip}:{self.cfg.port}?transport=udp"

    def start(self, timeout: float = 10.0) -> Coturn:
        binary = procs.find_binary("turnserver")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start(
            argv(binary, self.cfg, self.state_dir), self.state_dir / "turnserver.log"
        )
        # coturn listens on TCP and UDP on the same port; TCP answering means it is up.
        procs.wait_for_port(self.cfg.port, self.cfg.listen_ip, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
