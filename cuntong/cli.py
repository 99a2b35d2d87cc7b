"""The ``cuntong`` command.

    cuntong up [--terminals N]    the whole system on this machine (embedded defaults)
    cuntong agent                 one terminal's edge agent
    cuntong api                   the cloud API (with the ingest consumer unless disabled)
    cuntong ingest                a standalone ingest consumer (scale out: run several)
    cuntong recordings serve      a media host's recordings, read-only over mutual TLS
    cuntong db | backup | deploy  operations (see cuntong.ops_cli)

Settings come from CUNTONG_* environment variables and the TOML file named by
CUNTONG_CONFIG; flags override both.

Every command stops on SIGINT or SIGTERM, set explicitly: a process started as a background
job of a non-interactive shell (nohup, CI runners) inherits SIGINT as ignored. The
long-running ones (agent, api, ingest) give their shutdown ``STOP_GRACE_S``; past it they log
the tasks still running and exit hard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from common import sdnotify
from common.aio import within
from common.errors import ConfigError, CuntongError
from cuntong import __version__

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from common.settings import AgentSettings
    from edge.identity import SecureLink


#: Seconds a long-running command's shutdown may take once it is asked to stop.
STOP_GRACE_S = 8.0

log = logging.getLogger("cuntong")


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_until_signal(main: Callable[[asyncio.Event], Coroutine[object, object, None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        work = asyncio.create_task(main(stop))
        asked = asyncio.create_task(stop.wait())
        await asyncio.wait([work, asked], return_when=asyncio.FIRST_COMPLETED)
        asked.cancel()
        if not work.done():
            await asyncio.wait([work], timeout=STOP_GRACE_S)
            if not work.done():
                _give_up()
        await work

    asyncio.run(runner())


def _give_up() -> None:
    """The shutdown overran its deadline: say what was still running, then exit hard (our
    own children get SIGKILL from the kernel, see ``common.procs``)."""
    stuck = [t for t in asyncio.all_tasks() if not t.done()]
    for task in stuck:
        frames = task.get_stack(limit=1)
        where = f"{frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "?"
        log.error(
            "still running %.0fs after the stop signal: %s at %s",
            STOP_GRACE_S,
            task.get_name(),
            where,
        )
    logging.shutdown()
    os._exit(1)


def _cmd_agent(args: argparse.Namespace) -> None:
    from common.settings import AgentSettings, load
    from edge.agent import Agent

    settings = load(
        AgentSettings,
        terminal_id=args.terminal_id,
        broker_host=args.broker_host,
        broker_port=args.broker_port,
        state_dir=args.state_dir,
        simulate=args.simulate or None,
    )

    from edge import logs

    logs.install(settings.state_dir / "logs", settings.log_max_bytes, settings.log_backups)
    exit_code = 0

    async def main(stop: asyncio.Event) -> None:
        nonlocal exit_code
        link = await _secure_link(settings, stop)
        if stop.is_set():
            return
        agent = Agent(settings, link=link)
        run = asyncio.create_task(agent.run())
        await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        agent.stop()
        await run
        exit_code = agent.exit_code

    _run_until_signal(main)
    if exit_code:
        # reboot / restart_agent: the supervisor starts the agent again (edge.agent).
        logging.shutdown()
        sys.exit(exit_code)


async def _secure_link(settings: AgentSettings, stop: asyncio.Event) -> SecureLink | None:
    """Enrol (first boot) or load the identity, retrying while the cloud is unreachable."""
    import random
    from datetime import UTC, datetime

    import httpx

    from common import backoff
    from edge.identity import establish
    from provisioning.errors import ProvisioningError

    log = logging.getLogger("cuntong.agent")
    attempt = 0
    while not stop.is_set():
        try:
            return await establish(settings.state_dir, settings.claim_file, datetime.now(UTC))
        except httpx.HTTPStatusError as err:
            # Throttled (429) or the service failing: wait as told, or back off.
            told = err.response.headers.get("Retry-After", "")
            wait = (
                float(told)
                if told.isdigit()
                else backoff.delay(
                    attempt, settings.backoff_base_s, settings.backoff_cap_s, random.random()
                )
            )
            attempt += 1
            log.warning("enrolment answered %s; retry in %.1fs", err.response.status_code, wait)
            with contextlib.suppress(TimeoutError):
                await within(stop.wait(), wait)
        except (httpx.HTTPError, OSError) as err:
            wait = backoff.delay(
                attempt, settings.backoff_base_s, settings.backoff_cap_s, random.random()
            )
            attempt += 1
            log.warning("enrolment service unreachable (%s); retry in %.1fs", err, wait)
            with contextlib.suppress(TimeoutError):
                await within(stop.wait(), wait)
        except ProvisioningError as err:
            # A refused claim will not get better by retrying: say why and stop.
            raise CuntongError(f"enrolment refused: {err}") from err
    return None


ENROL_PREFIX = "/api/v1/enrol"


def without_prefix(app: ASGIApp, prefix: str) -> ASGIApp:
    """``app`` answering 404 to HTTP requests under ``prefix`` (lifespan passes through)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == prefix or path.startswith(prefix + "/")):
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b'{"detail":"Not Found"}'})
            return
        await app(scope, receive, send)

    return wrapped


def _notifying_server():  # type: ignore[no-untyped-def]
    import uvicorn

    class Server(uvicorn.Server):
        """Tells systemd the stop began as the signal arrives (uvicorn takes the signal)."""

        def handle_exit(self, sig: int, frame: object) -> None:
            sdnotify.notify("STOPPING=1")
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    return Server


def _cmd_api(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    import uvicorn

    from common.settings import CloudSettings, load
    from cuntong.app import create_app

    settings = load(CloudSettings, api_host=args.host, api_port=args.port)
    app = create_app(settings)
    terminal_listener = settings.state_dir is not None and bool(settings.terminal_api_port)
    server_class = _notifying_server()
    servers = [
        server_class(
            uvicorn.Config(
                # With a terminals' HTTPS listener, enrolment is served there only: the
                # operator port is plain HTTP and a claim token must not cross it.
                without_prefix(app, ENROL_PREFIX) if terminal_listener else app,
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                proxy_headers=False,
                # Open WebSockets (teller pages) would otherwise hold the shutdown forever.
                timeout_graceful_shutdown=5,
            )
        )
    ]
    if terminal_listener:
        assert settings.state_dir is not None
        from cloud.security import terminal_api_tls

        host = settings.terminal_api_host
        names = {n.strip() for n in settings.terminal_api_names.split(",") if n.strip()}
        cert, key = terminal_api_tls(
            settings.state_dir,
            list(dict.fromkeys([host, "localhost", "127.0.0.1", *sorted(names)])),
            datetime.now(UTC),
        )
        servers.append(
            server_class(
                uvicorn.Config(
                    app,
                    host=host,
                    port=settings.terminal_api_port,
                    ssl_certfile=str(cert),
                    ssl_keyfile=str(key),
                    lifespan="off",  # one lifespan (one ingest) for both listeners
                    log_level="warning",
                    proxy_headers=False,
                    timeout_graceful_shutdown=5,
                )
            )
        )

    async def serve() -> None:
        # The operator listener starts first so the lifespan (database, ingest) is up
        # before terminals can call in.
        main = asyncio.create_task(servers[0].serve())
        while not servers[0].started and not main.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.05)
        tasks = [main, *(asyncio.create_task(s.serve()) for s in servers[1:])]
        watchdog = sdnotify.start_watchdog() if servers[0].started else None
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if watchdog is not None:
            watchdog.cancel()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)

    asyncio.run(serve())


def _cmd_ingest(args: argparse.Namespace) -> None:
    from cloud.db import close_db, open_db
    from cloud.ingest.consumer import IngestConsumer
    from cloud.tsdb import TelemetryWriter
    from common.settings import CloudSettings, load

    settings = load(CloudSettings)

    async def main(stop: asyncio.Event) -> None:
        await open_db(settings.db_url)
        writer = TelemetryWriter(
            settings.tsdb_url, settings.tsdb_org, settings.tsdb_bucket, settings.tsdb_token
        )
        security = None
        if settings.state_dir is not None:
            from datetime import UTC, datetime

            from cloud.security import Security

            security = Security.build(settings, datetime.now(UTC))
        consumer = IngestConsumer(settings, writer, security)
        run = asyncio.create_task(consumer.run())
        watchdog = sdnotify.start_watchdog()
        await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        sdnotify.notify("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await writer.close()
        await close_db()

    _run_until_signal(main)


def _cmd_recordings_serve(args: argparse.Namespace) -> None:
    from cloud.media.recserve import serve

    tls: Path = args.tls
    cert, key, ca = tls / "cert.pem", tls / "key.pem", tls / "ca.pem"
    server = serve(args.dir, args.host, args.port, cert, key, ca)
    print(f"recordings of {args.dir} on https://{args.host}:{server.port}", flush=True)

    async def main(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.to_thread(server.stop)

    _run_until_signal(main)


def _cmd_up(args: argparse.Namespace) -> None:
    from cuntong.stack import Stack

    Stack(
        state_dir=args.state_dir,
        terminals=args.terminals,
        janus_nodes=args.janus_nodes,
        api_replicas=args.api_replicas,
    ).run()


def _cmd_demo_id_card(args: argparse.Namespace) -> None:
    from cuntong import demoid

    folder = args.state_dir / "terminals" / args.terminal
    if not (folder / demoid.CARDS_FILE).exists():
        raise ConfigError(
            f"no demo ID reader under {folder}: start `cuntong up` (terminal {args.terminal} "
            "is the one with simulated devices)"
        )
    if args.card is not None:
        demoid.select(folder, args.card)  # UnknownCard (a ConfigError) names the labels
        print(f"{args.terminal}: the next ID card read presents {args.card!r}")
    print(demoid.describe(folder))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cuntong", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cuntong {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole system on this machine")
    up.add_argument("--terminals", type=int, default=3, help="simulated terminals (default 3)")
    up.add_argument("--state-dir", type=Path, default=Path(".state"), help="default ./.state")
    up.add_argument("--janus-nodes", type=int, default=0,
                    help="local Janus nodes (default 1, or $CUNTONG_UP_JANUS_NODES)")  # fmt: skip
    up.add_argument("--api-replicas", type=int, default=1,
                    help="API processes on one database, HAProxy in front (default 1)")  # fmt: skip
    up.set_defaults(func=_cmd_up)

    demo = sub.add_parser("demo", help="controls of the `cuntong up` demo's simulators")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    idcard = demo_sub.add_parser(
        "id-card", help="show SX-00001's demo ID cards, or put one on its reader"
    )
    idcard.add_argument("card", nargs="?", help="a card's label (or 'none'); omit to list them")
    idcard.add_argument("--state-dir", type=Path, default=Path(".state"), help="default ./.state")
    idcard.add_argument("--terminal", default="SX-00001", help="default SX-00001")
    idcard.set_defaults(func=_cmd_demo_id_card)

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

    recordings = sub.add_parser("recordings", help="a media host's call recordings")
    rec_sub = recordings.add_subparsers(dest="recordings_command", required=True)
    rec_serve = rec_sub.add_parser(
        "serve", help="serve one folder's .mjr files, read-only, to cloud recordings certificates"
    )
    rec_serve.add_argument("--dir", type=Path, required=True, help="Janus's rec_dir")
    rec_serve.add_argument("--host", required=True, help="address to listen on")
    rec_serve.add_argument("--port", type=int, required=True, help="0: any free port")
    rec_serve.add_argument(
        "--tls", type=Path, required=True, help="folder with cert.pem, key.pem and ca.pem (root)"
    )
    rec_serve.set_defaults(func=_cmd_recordings_serve)

    # Sub-commands the other packages bring (imports are light: argparse only).
    from cloud.cli import add_parser as accounts
    from cloud.evidence.cli import add_parser as evidence
    from cuntong.ops_cli import add_parser as operations
    from firmware_adapters.cli import add_parser as peripherals
    from modeltools.cli import add_parser as models
    from provisioning.cli import add_parser as provision

    for add in (provision, accounts, evidence, peripherals, models, operations):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Explicit, so an inherited "ignore" does not make the process deaf to Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
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
