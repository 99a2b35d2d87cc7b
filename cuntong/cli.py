"""The ``cuntong`` command.

    cuntong up [--terminals N]    the whole system on this machine (embedded defaults)
    cuntong agent                 one terminal's edge agent
    cuntong api                   the cloud API (with the ingest consumer unless disabled)
    cuntong ingest                a standalone ingest consumer (scale out: run several)

Settings come from CUNTONG_* environment variables and the TOML file named by
CUNTONG_CONFIG; flags override both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cuntong import __version__
from cuntong.errors import CuntongError


def _run_until_signal(main: Callable[[asyncio.Event], object]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)  # type: ignore[misc]

    asyncio.run(runner())


def _cmd_agent(args: argparse.Namespace) -> None:
    from cuntong.settings import AgentSettings, load
    from edge.agent import Agent

    settings = load(
        AgentSettings,
        terminal_id=args.terminal_id,
        broker_host=args.broker_host,
        broker_port=args.broker_port,
        state_dir=args.state_dir,
        simulate=args.simulate or None,
    )

    async def main(stop: asyncio.Event) -> None:
        agent = Agent(settings)
        run = asyncio.create_task(agent.run())
        await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        agent.stop()
        await run

    _run_until_signal(main)


def _cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from cloud.api.app import create_app
    from cuntong.settings import CloudSettings, load

    settings = load(CloudSettings, api_host=args.host, api_port=args.port)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        proxy_headers=False,
    )
    uvicorn.Server(config).run()


def _cmd_ingest(args: argparse.Namespace) -> None:
    from cloud.db import close_db, open_db
    from cloud.ingest.consumer import IngestConsumer
    from cloud.tsdb import TelemetryWriter
    from cuntong.settings import CloudSettings, load

    settings = load(CloudSettings)

    async def main(stop: asyncio.Event) -> None:
        await open_db(settings.db_url)
        writer = TelemetryWriter(
            settings.tsdb_url, settings.tsdb_org, settings.tsdb_bucket, settings.tsdb_token
        )
        consumer = IngestConsumer(settings, writer)
        run = asyncio.create_task(consumer.run())
        await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await writer.close()
        await close_db()

    _run_until_signal(main)


def _cmd_up(args: argparse.Namespace) -> None:
    from cuntong.stack import Stack

    Stack(state_dir=args.state_dir, terminals=args.terminals).run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cuntong", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cuntong {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole system on this machine")
    up.add_argument("--terminals", type=int, default=3, help="simulated terminals (default 3)")
    up.add_argument("--state-dir", type=Path, default=Path(".state"), help="default ./.state")
    up.set_defaults(func=_cmd_up)

    agent = sub.add_parser("agent", help="run one terminal's edge agent")
    agent.add_argument("--terminal-id")
    agent.add_argument("--broker-host")
    agent.add_argument("--broker-port", type=int)
    agent.add_argument("--state-dir", type=Path)
    agent.add_argument("--simulate", action="store_true", help="simulated peripherals")
    agent.set_defaults(func=_cmd_agent)

    api = sub.add_parser("api", help="run the cloud API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=_cmd_api)

    ingest = sub.add_parser("ingest", help="run a standalone ingest consumer")
    ingest.set_defaults(func=_cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Per-request lines from the HTTP clients drown the ones that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        args.func(args)
    except CuntongError as err:
        print(f"cuntong: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
