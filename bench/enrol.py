"""Benchmark: enrol N terminals, CSR → certificate → first mTLS connect to a real mosquitto.

For each terminal: generate a P-256 key and CSR (terminal side), POST it with a batch claim
to the enrolment router (FastAPI, in-process over httpx's ASGI transport: the HTTP framing
is included, the network and the API's own TLS are not), which checks the claim, signs the
certificate and records terminal + certificate in SQLite; then open a TLS 1.3 connection to
mosquitto with the new certificate (mTLS, CRL and ACL on) and exchange MQTT 5
CONNECT/CONNACK. ``--concurrency`` terminals are in flight at once.

    .venv/bin/python bench/enrol.py --n 10000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from tortoise import Tortoise

from common import procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from provisioning import broker as broker_lib
from provisioning import ca as ca_lib
from provisioning import keys as keys_lib
from provisioning.api import make_router
from provisioning.cli_actions import tortoise_config
from provisioning.device import client_ssl_context, new_csr
from provisioning.files import write_private
from provisioning.protocol import BrokerAddress, EnrolmentResponse
from provisioning.service import Provisioner

REGION = {"province": "陕西省", "city": "西安市", "county": "长安区", "village": "王莽村"}


async def connect(port: int, folder: Path, answer: EnrolmentResponse, key_pem: bytes) -> None:
    """First connect: mTLS handshake plus MQTT 5 CONNECT → CONNACK (reason 0)."""
    write_private(folder / "key.pem", key_pem)
    write_private(folder / "cert.pem", answer.certificate_pem.encode())
    write_private(folder / "ca.pem", answer.ca_pem.encode())
    ctx = client_ssl_context(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    cid = answer.terminal_id.encode()
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + len(cid).to_bytes(2, "big") + cid
    writer.write(b"\x10" + bytes([len(body)]) + body)
    connack = await reader.readexactly(5)
    if connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"{answer.terminal_id}: CONNACK {connack.hex()}")
    writer.write(b"\xe0\x00")  # DISCONNECT
    writer.close()
    await writer.wait_closed()


async def main(n: int, concurrency: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cuntong-bench-enrol-"))
    now = dt.datetime.now(dt.UTC)
    authority = ca_lib.load_or_create(base / "state", now)
    files = broker_lib.prepare(authority, base / "broker-tls", ["127.0.0.1"], now)
    port = procs.free_port()
    lines = broker_lib.config_lines(files)
    broker = Broker(
        BrokerConfig(port=port, allow_anonymous=False, extra_lines=lines), base / "mosquitto"
    ).start()
    await Tortoise.init(config=tortoise_config(f"sqlite://{base / 'registry.sqlite3'}"))
    await Tortoise.generate_schemas()
    provisioner = Provisioner(
        authority,
        keys_lib.load_or_create(base / "state"),
        BrokerAddress(host="127.0.0.1", port=port, server_name="127.0.0.1"),
    )
    _, token = await provisioner.create_claim(now, max_uses=n, valid_for=dt.timedelta(days=1))
    app = FastAPI()
    app.include_router(make_router(provisioner))
    phases: dict[str, list[float]] = {"keygen+csr": [], "enrol": [], "connect": [], "total": []}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            tid = f"SX-{i:06d}"
            t0 = time.perf_counter()
            key = ca_lib.new_key()
            csr = new_csr(key, tid).decode()
            t1 = time.perf_counter()
            response = await http.post(
                "/api/v1/enrol",
                json={
                    "claim_token": token,
                    "terminal_id": tid,
                    "hardware_model": "ZN-E100",
                    "region": REGION,
                    "csr_pem": csr,
                },
            )
            response.raise_for_status()
            answer = EnrolmentResponse.model_validate(response.json())
            t2 = time.perf_counter()
            await connect(port, base / "terminals" / tid, answer, ca_lib.key_pem(key))
            t3 = time.perf_counter()
            for name, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                phases[name].append(value)

    for i in range(n):
        (base / "terminals" / f"SX-{i:06d}").mkdir(parents=True)
    transport = httpx.ASGITransport(app=app)
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await Tortoise.close_connections()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"enrolled and connected {n} terminals in {elapsed:.1f} s "
        f"({n / elapsed:.1f} terminals/s, concurrency {concurrency})"
    )
    if n < 10_000:
        print(f"EXTRAPOLATED (not measured) to 10,000 at this rate: {10_000 * elapsed / n:.0f} s")
    for name, values in phases.items():
        values.sort()
        p95 = values[int(len(values) * 0.95) - 1]
        print(
            f"  {name:<11} mean {statistics.mean(values) * 1000:7.1f} ms   "
            f"p50 {values[len(values) // 2] * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"
        )
    print(f"command: .venv/bin/python bench/enrol.py --n {n} --concurrency {concurrency}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
