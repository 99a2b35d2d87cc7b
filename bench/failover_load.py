"""Failover under load (issue 17): customers queued and calls live when the leading API
replica is SIGKILLed; how long until the desk serves again, how many customers lost their
place, how many calls dropped.

Real processes: Mosquitto, Janus (recording every room), VictoriaMetrics, two ``cuntong
api`` replicas on one SQLite file (lease TTL 2 s, ``tests/ha/rig.py``), HAProxy as
``cuntong.deploy.haproxy_config`` renders it. Everything the desk is asked goes through the
real protocols:

- **terminals** are MQTT clients on the terminal topics (retained ``status`` with a last
  will, requests and cancels on ``session``, the desk's answers on ``desk``), encoded by
  the call codec the agent uses; the broker is the rig's plain one (no mTLS enrolment);
- **tellers** are teller accounts (made before the replicas start, with the product's own
  account and profile code; a cheap Argon2 hash) on the teller API through HAProxy: the
  event WebSocket (reconnected whenever it closes, as the teller page does) and HTTP;
- **calls**: each terminal's grant and each teller's accept answer joins Janus directly
  (the rig's cloud is not secured, so there is no signalling gate) as a ``Leg`` of
  ``tests/callbench``: aiortc sets up ICE/DTLS/SRTP, the packets of a pre-encoded VP8 clip
  and an Opus tone go out through ``fastpath`` (cheap RTP), and what arrives is counted.

Setup: ``--calls`` calls placed and answered (every teller busy), then ``--queued``
customers ask at once (positions 1..N in the order the desk got them). Each round:

1. before: every waiting customer's last announced position; every call's frames received
   on both legs and the bytes of its ``.mjr`` recordings;
2. SIGKILL the leader; at once a probe terminal asks for a teller (the request waits in the
   broker for whichever desk comes next);
3. measured from the kill: the survivor leads (``/healthz/leader``); **the desk serves
   again** (the probe's request is answered ``queued``); every teller page is reconnected;
   every waiting customer has been told their position again;
4. per customer: the same session and the same position as before, and no ``failed``; per
   call: the room still on Janus, on the supervisor's live board, the teller's ``/me`` still
   holds it (connected, busy), frames still arriving on both legs and its recordings still
   growing, and neither party told ``failed`` or ``ended``;
5. the probe cancels; the killed replica starts again as a standby.

After the last round every customer and call is checked once more. The figures (p50/p99 over
rounds), the machine's load and the command that reproduces them are printed; the last line
is ``result: {json}`` (``tests/ha/test_failover_bench.py`` reads it).

    .venv/bin/python bench/failover_load.py [--queued 200] [--calls 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
from argon2 import PasswordHasher
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.auth import service
from cloud.db import close_db, open_db
from cloud.sessions import profiles
from common import envelope, procs, topics
from cuntong.servers.janus import Janus, JanusConfig
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom, record_base
from tests.callbench import media
from tests.ha.rig import SUPERVISOR, SUPERVISOR_PASSWORD, Replicas, find_leader, haproxy, token

BUSINESS, LANGUAGE = "pension", "cmn"
TELLER_PASSWORD = "failover bench teller password"
#: Cheap Argon2id: the benchmark measures the desk, not logins.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
#: How long each thing may take after the kill before it counts as not happening.
WITHIN_S = 90.0
#: Frames a call's legs must receive after the takeover to count as still flowing.
MORE_FRAMES = 15


def _now() -> datetime:
    return datetime.now(UTC)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- terminals ---------------------------------------------------------------------------


@dataclass
class Terminal:
    """A simulated terminal on MQTT: what the desk told it, with when it arrived."""

    tid: str
    client: aiomqtt.Client
    got: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)
    session: str = ""

    async def send(self, message: dict[str, Any]) -> None:
        topic = topics.topic(self.tid, topics.Channel.SESSION)
        await self.client.publish(topic, orjson.dumps(message), qos=1)

    async def request(self) -> str:
        request_id = uuid.uuid4().hex
        await self.send({"type": "request", "request_id": request_id, "business": BUSINESS,
                         "language": LANGUAGE, "elderly": False})  # fmt: skip
        return request_id

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], since: int, within: float = WITHIN_S
    ) -> tuple[float, dict[str, Any]]:
        """The first message from index ``since`` on that ``match``es, with its arrival."""
        async with asyncio.timeout(within):
            while True:
                for at, message in self.got[since:]:
                    if match(message):
                        return at, message
                since = len(self.got)
                self.news.clear()
                await self.news.wait()

    def after(self, since: int) -> list[dict[str, Any]]:
        return [m for _, m in self.got[since:]]


def _status(tid: str, online: bool) -> bytes:
    return envelope.Status(tid, online, int(time.time() * 1000), {}, {}, "ZN-E100").to_bytes()


async def open_terminal(stack: contextlib.AsyncExitStack, port: int, tid: str) -> Terminal:
    status = topics.topic(tid, topics.Channel.STATUS)
    client = aiomqtt.Client(
        "127.0.0.1", port, identifier=tid, protocol=aiomqtt.ProtocolVersion.V5,
        will=aiomqtt.Will(status, _status(tid, False), qos=1, retain=True),
    )  # fmt: skip
    await stack.enter_async_context(client)
    await client.subscribe(topics.topic(tid, topics.Channel.DESK), qos=1)
    await client.publish(status, _status(tid, True), qos=1, retain=True)
    term = Terminal(tid, client)

    async def pump() -> None:
        async for message in client.messages:
            term.got.append((time.monotonic(), json.loads(message.payload)))  # type: ignore[arg-type]
            term.news.set()

    reader = asyncio.create_task(pump())
    stack.push_async_callback(_cancel, reader)
    return term


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- tellers -----------------------------------------------------------------------------


@dataclass
class TellerPage:
    """A teller's page: the event WebSocket through HAProxy, opened again whenever it closes."""

    account: str
    token: str
    #: monotonic times at which the page (re)opened its WebSocket and got ``hello``
    opened: list[float] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def run(self, url: str, offers: dict[str, asyncio.Future[TellerPage]]) -> None:
        ws_url = url.replace("http", "ws", 1) + f"/api/v1/teller/events?token={self.token}"
        while True:
            try:
                async with connect(ws_url, open_timeout=5, ping_interval=None) as ws:
                    if json.loads(await ws.recv())["type"] == "hello":
                        self.opened.append(time.monotonic())
                    async for text in ws:
                        message = json.loads(text)
                        if message["type"] == "offer":
                            future = offers.setdefault(
                                message["session"], asyncio.get_running_loop().create_future()
                            )
                            if not future.done():
                                future.set_result(self)
            except Exception:  # the leader died, or HAProxy has none yet: again
                pass
            await asyncio.sleep(0.25)


async def make_tellers(db_url: str, n: int) -> list[TellerPage]:
    """``n`` teller accounts serving every business in Mandarin, each logged in once (the
    product's own account, profile and login code, before the replicas start)."""
    await open_db(db_url)
    try:
        now = _now()
        pages = []
        for i in range(n):
            account = f"fo-teller-{i:03d}"
            await service.create_account(account, TELLER_PASSWORD, ["teller"], now,
                                         hasher=FAST_HASHER)  # fmt: skip
            every = profiles.parse_skill_args(["*=3"])
            await profiles.set_profile(account, every, [LANGUAGE], now)
            login = await service.login(account, TELLER_PASSWORD, now, timedelta(hours=4),
                                        FAST_HASHER)  # fmt: skip
            assert login is not None
            pages.append(TellerPage(account, login[0]))
        return pages
    finally:
        await close_db()


# -- calls -------------------------------------------------------------------------------


class Worker:
    """A ``bench/leg_worker.py`` process: the media of some of the calls."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.rid = 0
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, clip_file: Path) -> Worker:
        argv = [
            sys.executable,
            str(Path(__file__).parent / "leg_worker.py"),
            "--clip",
            str(clip_file),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("a leg worker did not start")
        worker = cls(proc)
        worker.reader = asyncio.create_task(worker._read())
        return worker

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            reply = json.loads(line)
            future = self.waiting.pop(reply.pop("rid"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(RuntimeError("a leg worker died"))

    async def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.rid += 1
        future = self.waiting[self.rid] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write((json.dumps({"rid": self.rid, "cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(future, 300)

    async def quit(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Call:
    session: str
    terminal: Terminal
    teller: TellerPage
    worker: Worker
    grant: dict[str, Any]


async def media_snap(workers: list[Worker]) -> tuple[dict[str, Any], list[str]]:
    """Every call's frames so far (customer, teller, peer connection states), and the
    generator streams that failed, from every worker."""
    snaps = await asyncio.gather(*(w.ask("snap") for w in workers))
    calls = {k: v for snap in snaps for k, v in snap["calls"].items()}
    return calls, [d for snap in snaps for d in snap["dropped"]]


def recorded(rec_dir: Path, session: str) -> dict[str, int]:
    """What Janus has written so far of the room's recordings, per feed (its streams summed):
    what Janus receives from each publisher."""
    prefix = record_base(session, "")
    out: dict[str, int] = {}
    for path in rec_dir.glob(f"{prefix}*.mjr"):
        feed = re.sub(r"-(audio|video|data)-\d+\.mjr$", "", path.name[len(prefix) :])
        out[feed] = out.get(feed, 0) + path.stat().st_size
    return out


def _grew(before: dict[str, int], now: dict[str, int]) -> bool:
    """Every feed recorded before has been recorded further (and there were two)."""
    return len(before) >= 2 and all(now.get(feed, 0) > size for feed, size in before.items())


async def place_call(
    http: httpx.AsyncClient,
    term: Terminal,
    offers: dict[str, asyncio.Future[TellerPage]],
    worker: Worker,
    failures: list[str],
    tries: int = 3,
) -> Call:
    """The terminal asks, the offered teller accepts, both join and see a picture. On a
    machine starved by other jobs a leg's DTLS or first keyframe can fail: that attempt is
    hung up and wrapped up (its teller serves again) and the terminal asks anew."""
    for attempt in range(1, tries + 1):
        since = len(term.got)
        request_id = await term.request()
        teller: TellerPage | None = None
        session = "?"
        try:
            _, queued = await term.wait_for(
                lambda m, r=request_id: m["type"] == "queued" and m.get("request_id") == r,  # type: ignore[misc]
                since,
            )
            session = term.session = queued["session"]
            offered = offers.setdefault(session, asyncio.get_running_loop().create_future())
            teller = await asyncio.wait_for(offered, WITHIN_S)
            path = f"/api/v1/teller/sessions/{session}/accept"
            answer = await http.post(path, headers=teller.auth)
            answer.raise_for_status()
            _, grant = await term.wait_for(
                lambda m, s=session: m["type"] == "connect" and m.get("room") == s,  # type: ignore[misc]
                since,
            )
            joined = await worker.ask("join", session=session, grants=[grant, answer.json()])
            if not joined["ok"]:
                raise RuntimeError(joined["error"])
            return Call(session, term, teller, worker, grant)
        except (TimeoutError, httpx.HTTPError, OSError, RuntimeError) as err:
            failures.append(f"{term.tid} try {attempt} ({session}): {type(err).__name__} {err}")
            if teller is not None:
                with contextlib.suppress(httpx.HTTPError):
                    hang_up = f"/api/v1/teller/sessions/{session}/hang-up"
                    await http.post(hang_up, json={"cause": "setup failed"}, headers=teller.auth)
                    await http.post("/api/v1/teller/me/wrap-up-done", headers=teller.auth)
    raise RuntimeError(f"{term.tid}: no call after {tries} tries: {failures[-tries:]}")


# -- checks ------------------------------------------------------------------------------


async def _get(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    """A GET through HAProxy, asked again while the desk is between leaders."""
    deadline = time.monotonic() + WITHIN_S
    while True:
        with contextlib.suppress(httpx.HTTPError):
            r = await http.get(path, headers=headers)
            if r.status_code == 200:
                return r.json()
        if time.monotonic() > deadline:
            raise TimeoutError(f"GET {path} never answered")
        await asyncio.sleep(0.2)


async def room_exists(call: Call) -> bool:
    client = JanusClient(call.grant["janus_url"], call.grant["token"])
    async with client as janus, janus.session() as js:
        return await (await VideoRoom.attach(js)).exists(call.session)


async def check_calls(
    http: httpx.AsyncClient,
    sup: str,
    calls: list[Call],
    workers: list[Worker],
    rec_dir: Path,
    since: dict[str, int],
    window: float = 30,
    stalls: list[str] | None = None,
) -> list[str]:
    """Why each call that dropped did (one line each; none for a call that carries on).
    ``since``: per terminal, the index of its first message after the kill; ``window``: how
    long the recordings and frames get to grow. The call's media is judged where the system
    has it: Janus still recording every feed. A generator leg that stops counting frames
    while Janus records both feeds is the load generator's own failure (its receiving peer
    connection closed on a starved machine): added to ``stalls``, not counted as dropped."""
    live = {c["session"] for c in await _get(http, "/api/v1/teller/live", _bearer(sup))}
    frames, _ = await media_snap(workers)
    before = {c.session: (frames[c.session], recorded(rec_dir, c.session)) for c in calls}
    dropped: list[str] = []
    limit = asyncio.Semaphore(8)

    async def check(call: Call) -> None:
        why = []
        if call.session not in live:
            why.append("not on the live board")
        async with limit:
            me = await _get(http, "/api/v1/teller/me", call.teller.auth)
            try:
                if not await room_exists(call):
                    why.append("room gone from Janus")
            except Exception as err:  # reported as the call's loss
                why.append(f"room not asked: {err!r}")
        if (me["session"], me["session_state"], me["state"]) != (call.session, "connected", "busy"):
            why.append(f"teller's /me says {me}")
        told = [m for m in call.terminal.after(since[call.terminal.tid])
                if m["type"] in ("failed", "ended")]  # fmt: skip
        if told:
            why.append(f"terminal told {told}")
        if why:
            dropped.append(f"{call.session}: {'; '.join(why)}")

    await asyncio.gather(*(check(call) for call in calls))
    # media and recordings, over one common window for all calls
    deadline = time.monotonic() + window
    pending = {c.session for c in calls}  # Janus not yet seen recording every feed further
    deaf = {c.session for c in calls}  # a generator leg not yet seen receiving more frames
    while (pending or deaf) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        frames, _ = await media_snap(workers)
        for call in calls:
            (c0, a0, _), size0 = before[call.session]
            c1, a1, _ = frames[call.session]
            if call.session in pending and _grew(size0, recorded(rec_dir, call.session)):
                pending.discard(call.session)
            if c1 - c0 >= MORE_FRAMES and a1 - a0 >= MORE_FRAMES:
                deaf.discard(call.session)
    for call in calls:
        (c0, a0, _), size0 = before[call.session]
        c1, a1, states = frames[call.session]
        size1 = recorded(rec_dir, call.session)
        about = (f"customer leg +{c1 - c0} frames, teller leg +{a1 - a0}, recorded per feed "
                 f"{ {f: size1.get(f, 0) - n for f, n in size0.items()} } B in {window:.0f} s; "
                 f"the generator's peer connections {states}")  # fmt: skip
        if call.session in pending:
            dropped.append(f"{call.session}: media stalled ({about})")
        elif call.session in deaf and stalls is not None:
            stalls.append(f"{call.session}: a generator leg stopped receiving ({about})")
    return dropped


def positions(waiting: list[Terminal], since: dict[str, int]) -> dict[str, tuple[str, int] | None]:
    """Each waiting terminal's last announced (session, position) from ``since`` on."""
    out: dict[str, tuple[str, int] | None] = {}
    for term in waiting:
        queued = [m for m in term.after(since.get(term.tid, 0)) if m["type"] == "queued"]
        out[term.tid] = (queued[-1]["session"], queued[-1]["position"]) if queued else None
    return out


def check_places(
    waiting: list[Terminal],
    before: dict[str, tuple[str, int] | None],
    since: dict[str, int],
    told_since: dict[str, int] | None = None,
) -> list[str]:
    """Why each customer who lost their place did (their session, position, or news):
    ``failed`` or ``ended`` from ``since`` on, the last position from ``told_since`` on."""
    after = positions(waiting, told_since or since)
    lost = []
    for term in waiting:
        bad = [m for m in term.after(since[term.tid]) if m["type"] in ("failed", "ended")]
        if after[term.tid] != before[term.tid] or bad:
            lost.append(f"{term.tid}: before {before[term.tid]}, after {after[term.tid]}, {bad}")
    return lost


def _key(line: str) -> str:
    """The terminal or session a loss line is about."""
    return line.split(":")[0]


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


# -- the run -----------------------------------------------------------------------------


@dataclass
class Round:
    takeover_s: float | None = None
    served_s: float | None = None
    tellers_back_s: float | None = None
    announced_s: float | None = None
    places_lost: list[str] = field(default_factory=list)
    calls_dropped: list[str] = field(default_factory=list)
    #: calls that failed the same checks just before the kill (the load generator's own
    #: peer connections failing on a starved machine): not counted as dropped by the kill
    broken_before: list[str] = field(default_factory=list)
    #: calls whose Janus recorded every feed on but a generator leg stopped receiving
    receive_stalls: list[str] = field(default_factory=list)
    #: the same, seen just before the kill
    receive_stalls_before: list[str] = field(default_factory=list)
    load: str = ""


async def _when(probe: Callable[[], Any], within: float = WITHIN_S) -> float | None:
    """The monotonic time ``probe()`` (awaited) first was truthy; None if never."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return time.monotonic()
        await asyncio.sleep(0.05)
    return None


async def one_round(
    rig: Replicas, url: str, sup: str, probe: Terminal, waiting: list[Terminal],
    calls: list[Call], pages: list[TellerPage], workers: list[Worker], rec_dir: Path,
) -> Round:  # fmt: skip
    everyone = [*waiting, *(c.terminal for c in calls)]
    before = positions(waiting, {})
    missing = [t.tid for t in waiting if before[t.tid] is None]
    if missing:
        raise RuntimeError(f"never told a position before the kill: {missing[:5]}")
    leader = await find_leader(rig.procs)
    if leader is None:
        raise RuntimeError("no replica leads")
    i = rig.procs.index(leader)
    since = {t.tid: len(t.got) for t in [*everyone, probe]}
    out = Round(load=_load())
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        out.broken_before = await check_calls(
            http, sup, calls, workers, rec_dir, since, window=10, stalls=out.receive_stalls_before
        )
    broken = {_key(line) for line in out.broken_before}
    killed = time.monotonic()
    leader.proc.kill()  # SIGKILL: the leader hands nothing over
    await asyncio.to_thread(leader.proc.wait)
    request_id = await probe.request()  # waits in the broker for the next desk
    others = [p for p in rig.procs if p is not leader]

    old_sessions = {m.get("session") for m in probe.after(0)}

    async def served() -> float | None:
        """The probe's request answered: its first ``queued`` names its request id; one
        that only a second desk answered (the first lost the lease before it could) may
        arrive as a re-announcement without it, for a session the probe never had."""
        with contextlib.suppress(TimeoutError):
            at, _ = await probe.wait_for(
                lambda m: (
                    m["type"] == "queued"
                    and (m.get("request_id") == request_id or m["session"] not in old_sessions)
                ),
                since[probe.tid],
            )
            return at
        return None

    async def tellers_back() -> bool:
        return all(p.opened and p.opened[-1] > killed for p in pages)

    async def leads() -> bool:
        return await find_leader(others) is not None

    times = await asyncio.gather(served(), _when(leads), _when(tellers_back))
    out.served_s, out.takeover_s, out.tellers_back_s = (
        None if t is None else t - killed for t in times
    )
    # Positions as the new desk tells them: messages read from 1 s after the kill on. One
    # the old leader sent just before it died, read late, must not count; the new desk cannot
    # announce sooner: the lease changes hands at the earliest a TTL (2 s) less a renewal
    # period (0.67 s) after the old leader's last renewal.
    t_new = killed + 1.0
    told_since = {t.tid: next((k for k, (at, _) in enumerate(t.got) if at >= t_new), len(t.got))
                  for t in waiting}  # fmt: skip

    async def told_again() -> bool:
        return all(any(m["type"] == "queued" for m in t.after(told_since[t.tid])) for t in waiting)

    if await _when(told_again) is not None:
        firsts = [
            next(at for at, m in t.got[told_since[t.tid] :] if m["type"] == "queued")
            for t in waiting
        ]
        out.announced_s = max(firsts) - killed
    out.places_lost = check_places(waiting, before, since, told_since)
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        dropped = await check_calls(
            http, sup, calls, workers, rec_dir, since, stalls=out.receive_stalls
        )
    out.calls_dropped = [line for line in dropped if _key(line) not in broken]
    # the probe leaves the queue (the next round's probe asks anew)
    queued = [m for m in probe.after(since[probe.tid]) if m["type"] == "queued"]
    if queued:
        await probe.send({"type": "cancel", "session": queued[-1]["session"]})
    await asyncio.to_thread(rig.restart, i)  # the killed replica comes back as a standby
    await asyncio.sleep(3)  # HAProxy's checks see it up
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f} s"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    print(f"machine: {os.cpu_count()} cores; load average before: {_load()}", flush=True)
    state = Path(tempfile.mkdtemp(prefix="cuntong-failover-load-"))
    rec_dir = state / "rec"
    clip = media.encode_clip(args.clip_seconds, kbps=args.kbps)
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                      session_timeout=120, event_loops=os.cpu_count() or 2)  # fmt: skip
    janus = Janus(cfg, state / "janus").start()
    rig = Replicas(state, broker, janus, vm.url)
    rounds: list[Round] = []
    final_lost: list[str] = []
    final_dropped: list[str] = []
    clip_file = state / "clip.pickle"
    clip_file.write_bytes(pickle.dumps(clip))
    workers: list[Worker] = []
    generator: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    calls: list[Call] = []
    setup: dict[str, float] = {}
    try:
        pages = await make_tellers(rig.db, args.calls)
        workers = list(
            await asyncio.gather(*(Worker.start(clip_file) for _ in range(args.workers)))
        )
        rig.start()
        async with contextlib.AsyncExitStack() as stack:
            url = stack.enter_context(haproxy(state, rig.procs))
            await _when(lambda: find_leader(rig.procs))
            sup = await token(url, SUPERVISOR, SUPERVISOR_PASSWORD)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            offers: dict[str, asyncio.Future[TellerPage]] = {}
            tasks = [asyncio.create_task(p.run(url, offers)) for p in pages]
            await _when(lambda: _all_open(pages))
            for page in pages:  # asked again while HAProxy has not yet seen the leader up
                available = {"state": "available"}
                for _ in range(int(WITHIN_S / 0.5)):
                    r = await http.post(
                        "/api/v1/teller/me/state", json=available, headers=page.auth
                    )
                    if r.status_code != 503:
                        break
                    await asyncio.sleep(0.5)
                r.raise_for_status()
            port = broker.cfg.port
            t0 = time.monotonic()
            talking = [await open_terminal(stack, port, f"FO-C{i:04d}") for i in range(args.calls)]
            waiting = [await open_terminal(stack, port, f"FO-Q{i:04d}") for i in range(args.queued)]
            probe = await open_terminal(stack, port, "FO-PROBE")
            setup["terminals_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            limit = asyncio.Semaphore(args.setup_at_once)
            failures: list[str] = []

            async def placed(i: int, term: Terminal) -> Call:
                async with limit:
                    worker = workers[i % len(workers)]
                    return await place_call(http, term, offers, worker, failures)

            calls = list(await asyncio.gather(*(placed(i, t) for i, t in enumerate(talking))))
            for call in calls:
                stack.push_async_callback(_leave, call)
            setup["calls_s"] = time.monotonic() - t0
            t0 = time.monotonic()

            async def queue(term: Terminal) -> None:
                since = len(term.got)
                request_id = await term.request()
                _, q = await term.wait_for(
                    lambda m: m["type"] == "queued" and m.get("request_id") == request_id,
                    since,
                    within=900,  # the desk takes them one at a time
                )
                term.session = q["session"]

            # all at once: the broker's delivery order is their arrival, and so their place
            await asyncio.gather(*(queue(t) for t in waiting))
            setup["queue_s"] = time.monotonic() - t0
            told = positions(waiting, {})
            order = sorted(-1 if told[t.tid] is None else told[t.tid][1] for t in waiting)  # type: ignore[index]
            if order != list(range(1, len(waiting) + 1)):
                raise RuntimeError(f"positions before any kill are not 1..N: {order[:10]}")
            setup["failed_setups"] = len(failures)
            for line in failures:
                print(f"  call setup failed (tried again): {line}", flush=True)
            print(f"setup: {len(talking) + len(waiting) + 1} terminals on MQTT in "
                  f"{setup['terminals_s']:.1f} s; {len(calls)} calls live in "
                  f"{setup['calls_s']:.1f} s; {len(waiting)} customers queued in "
                  f"{setup['queue_s']:.1f} s; load {_load()}", flush=True)  # fmt: skip
            await asyncio.sleep(args.settle)
            for n in range(args.rounds):
                r = await one_round(rig, url, sup, probe, waiting, calls, pages, workers, rec_dir)
                rounds.append(r)
                print(f"round {n + 1}: takeover {_fmt(r.takeover_s)}, desk serves again "
                      f"{_fmt(r.served_s)}, teller pages back {_fmt(r.tellers_back_s)}, "
                      f"positions re-announced {_fmt(r.announced_s)}; places lost "
                      f"{len(r.places_lost)} of {len(waiting)}, calls dropped "
                      f"{len(r.calls_dropped)} of {len(calls)}; load before {r.load}",
                      flush=True)  # fmt: skip
                for line in (r.places_lost + r.calls_dropped)[:10]:
                    print(f"  {line}", flush=True)
                for line in r.broken_before[:5]:
                    print(f"  already broken before the kill: {line}", flush=True)
                print(f"  generator legs not receiving (Janus recording both feeds): "
                      f"{len(r.receive_stalls_before)} before the kill, {len(r.receive_stalls)} "
                      f"after", flush=True)  # fmt: skip
                for line in r.receive_stalls[:3]:
                    print(f"  not counted (generator): {line}", flush=True)
                await asyncio.sleep(args.settle)
            # once more, well after the last takeover: nothing lost late (grace periods)
            mark = {t.tid: 0 for t in [*waiting, *talking]}
            final_lost = check_places(waiting, positions(waiting, {}), mark)
            first = {t.tid: told[t.tid] for t in waiting}
            final_lost += [f"{t.tid}: first {first[t.tid]}, now {now}"
                           for t, now in zip(waiting, positions(waiting, {}).values(),
                                             strict=True) if now != first[t.tid]]  # fmt: skip
            final_dropped = await check_calls(http, sup, calls, workers, rec_dir, mark)
            _, generator = await media_snap(workers)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        for worker in workers:
            await worker.quit()
        rig.stop()
        janus.stop()
        vm.stop()
        broker.stop()
        if args.keep:
            print(f"state kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    return summary(args, rounds, final_lost, final_dropped, setup, generator)


async def _all_open(pages: list[TellerPage]) -> bool:
    return all(p.opened for p in pages)


async def _leave(call: Call) -> None:
    with contextlib.suppress(Exception):  # tidying up only
        await call.worker.ask("leave", session=call.session)


def summary(
    args: argparse.Namespace, rounds: list[Round], final_lost: list[str],
    final_dropped: list[str], setup: dict[str, float], generator: list[str],
) -> dict[str, Any]:  # fmt: skip
    figures: dict[str, Any] = {"queued": args.queued, "calls": args.calls, "rounds": len(rounds)}
    for key in ("takeover_s", "served_s", "tellers_back_s", "announced_s"):
        values = [getattr(r, key) for r in rounds]
        got = [v for v in values if v is not None]
        figures[key] = {
            "p50": statistics.median(got) if got else None,
            "p99": _pct(got, 0.99) if got else None,
            "max": max(got) if got else None,
            "never": len(values) - len(got),
        }
        print(f"{key}: p50 {_fmt(figures[key]['p50'])}, p99 {_fmt(figures[key]['p99'])}, "
              f"max {_fmt(figures[key]['max'])}" + (f", never in {figures[key]['never']} "
              f"rounds" if figures[key]["never"] else ""))  # fmt: skip
    # distinct customers and calls (a line starts with the terminal or the session)
    figures["places_lost"] = len(
        {line.split(":")[0] for r in rounds for line in r.places_lost}
        | {line.split(":")[0] for line in final_lost}
    )
    broken = {_key(line) for r in rounds for line in r.broken_before}
    figures["calls_dropped"] = len(
        {_key(line) for r in rounds for line in r.calls_dropped}
        | ({_key(line) for line in final_dropped} - broken)
    )
    figures["calls_broken_before_a_kill"] = len(broken)
    figures["generator_receive_stalls"] = len({_key(x) for r in rounds for x in r.receive_stalls})
    figures["generator_receive_stalls_before_a_kill"] = len(
        {_key(x) for r in rounds for x in r.receive_stalls_before}
    )
    figures["generator_streams_failed"] = generator
    figures["final_places_lost"], figures["final_calls_dropped"] = final_lost, final_dropped
    figures["load"] = [r.load for r in rounds] + [_load()]
    figures["setup"] = setup
    print(f"places lost: {figures['places_lost']} of {args.queued} customers (checked after "
          f"each of {len(rounds)} kills and once more at the end)")  # fmt: skip
    print(f"calls dropped: {figures['calls_dropped']} of {args.calls} calls (checked after "
          f"each of {len(rounds)} kills and once more at the end)")  # fmt: skip
    for line in (final_lost + final_dropped)[:10]:
        print(f"  {line}")
    if broken or generator or figures["generator_receive_stalls"]:
        print(f"not counted as dropped: {len(broken)} calls already broken before a kill; "
              f"{figures['generator_receive_stalls']} calls whose Janus recorded both feeds on "
              f"while a generator leg stopped receiving (seen before a kill already: "
              f"{figures['generator_receive_stalls_before_a_kill']}); the generator's send streams "
              f"that failed: {len(generator)} {generator[:4]}")  # fmt: skip
    print(f"load average after: {_load()}")
    print(f"reproduce: .venv/bin/python bench/failover_load.py --queued {args.queued} "
          f"--calls {args.calls} --rounds {args.rounds} --kbps {args.kbps}")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=200, help="customers waiting")
    parser.add_argument("--calls", type=int, default=50, help="calls live (one teller each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kbps", type=int, default=120, help="each leg's video bitrate")
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--settle", type=float, default=5.0, help="s between rounds")
    parser.add_argument("--workers", type=int, default=2, help="processes sending the media")
    parser.add_argument("--setup-at-once", type=int, default=3, help="calls set up at once")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs)")
    args = parser.parse_args()
    if args.queued < 1 or args.calls < 1 or args.rounds < 1:
        parser.error("--queued, --calls and --rounds must be at least 1")
    figures = asyncio.run(run(args))
    print("result: " + json.dumps(figures, default=str), flush=True)


if __name__ == "__main__":
    main()
