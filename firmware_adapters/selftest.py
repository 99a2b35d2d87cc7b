"""Self-test of every configured peripheral: open, self-test, close, one line each.

    python -m firmware_adapters.selftest --config peripherals.json

Exit status 0 when all passed, 1 otherwise. The JSON file maps names to settings as in
`firmware_adapters.registry`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from firmware_adapters.base import Adapter, SelfTestResult
from firmware_adapters.errors import PeripheralError
from firmware_adapters.registry import build_adapters


async def run_self_tests(adapters: Mapping[str, Adapter]) -> list[SelfTestResult]:
    """Self-test all adapters concurrently; a device that cannot open fails its own line."""

    async def one(adapter: Adapter) -> SelfTestResult:
        with contextlib.suppress(PeripheralError):  # self_test reports why
            await adapter.open()
        try:
            return await adapter.self_test()
        finally:
            await adapter.close()

    return list(await asyncio.gather(*(one(a) for a in adapters.values())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="JSON peripheral settings")
    args = parser.parse_args(argv)
    adapters = build_adapters(json.loads(args.config.read_text()))
    results = asyncio.run(run_self_tests(adapters))
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        print(f"{mark} {r.name:<10} {r.kind:<8} {r.latency_ms:8.1f} ms  {r.detail}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
