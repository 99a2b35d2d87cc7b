"""Mosquitto broker as a child process (MQTT 5 on loopback), for the stack, tests and benchmarks.

Its configuration (``BrokerConfig``, ``config_text``) is production code and lives in
``provisioning.broker``; this module only starts and stops the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import procs
from provisioning.broker import BrokerConfig, config_text

__all__ = ["Broker", "BrokerConfig", "config_text"]


@dataclass
class Broker:
    cfg: BrokerConfig
    state_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.cfg.host}:{self.cfg.port}"

    def start(self, timeout: float = 10.0) -> Broker:
        binary = procs.find_binary("mosquitto")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "mosquitto.conf"
        conf.write_text(config_text(self.cfg, self.state_dir))
        self.proc = procs.start([binary, "-c", str(conf)], self.state_dir / "mosquitto.log")
        procs.wait_for_port(self.cfg.port, self.cfg.host, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no last save of sessions or queued messages."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
