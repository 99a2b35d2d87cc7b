"""VictoriaMetrics as a child process: the embedded telemetry store.

It takes influxdb-client writes on ``/api/v2/write`` and answers PromQL. Deduplication is on
with a 1 ms window, so a sample replayed with the same timestamp (QoS 1 redelivery, a spool
drained twice) is stored once.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import procs


@dataclass
class VictoriaMetrics:
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    retention: str = "90d"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        return [
            procs.find_binary("victoria-metrics"),
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={self.host}:{self.port}",
            f"-retentionPeriod={self.retention}",
            "-dedup.minScrapeInterval=1ms",
            # Samples become searchable after this delay; keep it short for live dashboards.
            "-search.latencyOffset=1s",
            "-loggerLevel=WARN",
        ]

    def start(self, timeout: float = 15.0) -> VictoriaMetrics:
        argv = self.argv()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start(argv, self.data_dir.parent / "victoria-metrics.log")
        procs.wait_for_port(self.port, self.host, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
