"""``cuntong up``: the whole system on one machine, as child processes.

Broker, telemetry store, cloud API (with ingest) and N simulated terminals, each with config
generated under the state folder. Prints the URLs; Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cuntong import procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics

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


def _port(preferred: int) -> int:
    """The usual port when it is free, else any free one (a second stack, a busy laptop)."""
    try:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return procs.free_port()


@dataclass
class Stack:
    state_dir: Path
    terminals: int = 3
    telemetry_interval_s: float = 5.0
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def run(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        broker = Broker(BrokerConfig(port=_port(1883)), self.state_dir / "mosquitto")
        vm = VictoriaMetrics(_port(8428), self.state_dir / "victoria-metrics" / "data")
        api_port = _port(8000)
        previous = signal.signal(
            signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt)
        )
        try:
            broker.start()
            vm.start()
            self._start_api(broker, vm, api_port)
            for i in range(self.terminals):
                self._start_agent(i, broker)
            self._print_urls(broker, vm, api_port)
            self._watch()
        except KeyboardInterrupt:
            print("\nstopping …", flush=True)
        finally:
            for _name, proc in reversed(self.children):
                procs.stop(proc)
            vm.stop()
            broker.stop()
            signal.signal(signal.SIGTERM, previous)
            print("stopped; logs and data are in", self.state_dir, flush=True)

    def _env(self, **values: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
        env.update({k: str(v) for k, v in values.items()})
        return env

    def _start_api(self, broker: Broker, vm: VictoriaMetrics, port: int) -> None:
        env = self._env(
            CUNTONG_CLOUD_DB_URL=f"sqlite://{self.state_dir / 'cloud.sqlite3'}",
            CUNTONG_CLOUD_BROKER_PORT=broker.cfg.port,
            CUNTONG_CLOUD_TSDB_URL=vm.url,
            CUNTONG_CLOUD_API_PORT=port,
        )
        proc = procs.start(
            [sys.executable, "-m", "cuntong", "api"], self.state_dir / "api.log", env=env
        )
        self.children.append(("api", proc))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"cloud API exited; see {self.state_dir / 'api.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("cloud API did not become healthy in 30 s")

    def _start_agent(self, i: int, broker: Broker) -> None:
        province, city, county, village = SIM_VILLAGES[i % len(SIM_VILLAGES)]
        tid = f"SX-{i + 1:05d}"
        env = self._env(
            CUNTONG_AGENT_TERMINAL_ID=tid,
            CUNTONG_AGENT_BROKER_PORT=broker.cfg.port,
            CUNTONG_AGENT_STATE_DIR=self.state_dir / "terminals" / tid,
            CUNTONG_AGENT_TELEMETRY_INTERVAL_S=self.telemetry_interval_s,
            CUNTONG_AGENT_SIMULATE="true",
            CUNTONG_AGENT_PROVINCE=province,
            CUNTONG_AGENT_CITY=city,
            CUNTONG_AGENT_COUNTY=county,
            CUNTONG_AGENT_VILLAGE=village,
        )
        proc = procs.start(
            [sys.executable, "-m", "cuntong", "agent"],
            self.state_dir / "terminals" / f"{tid}.log",
            env=env,
        )
        self.children.append((tid, proc))

    def _print_urls(self, broker: Broker, vm: VictoriaMetrics, api_port: int) -> None:
        api = f"http://127.0.0.1:{api_port}"
        print(
            "\ncuntong is running:\n"
            f"  API docs          {api}/docs\n"
            f"  terminals         {api}/api/v1/terminals\n"
            f"  one terminal      {api}/api/v1/terminals/SX-00001\n"
            f"  its telemetry     {api}/api/v1/terminals/SX-00001/telemetry?minutes=10\n"
            f"  health            {api}/healthz\n"
            f"  telemetry store   {vm.url}/vmui  (VictoriaMetrics, PromQL)\n"
            f"  MQTT broker       {broker.url}  (MQTT 5)\n"
            f"  simulated terminals: {self.terminals}; state and logs in {self.state_dir}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )

    def _watch(self) -> None:
        while True:
            time.sleep(1)
            for name, proc in self.children:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
