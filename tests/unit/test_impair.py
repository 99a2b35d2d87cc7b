"""The weak-link model (pure, time as an argument) and its UDP relay on loopback."""

from __future__ import annotations

import asyncio
import random

import pytest

from cuntong.servers.impair import Impairment, Link
from cuntong.servers.udprelay import UdpRelay


def run(link: Link, sizes: list[int], every: float) -> list[tuple[float, int]]:
    """Offer packets of ``sizes`` every ``every`` s; (delivery time, size) of those delivered,
    collected by polling ``due`` on a 1 ms grid."""
    out: list[tuple[float, int]] = []
    t = 0.0
    for i, size in enumerate(sizes):
        link.offer(bytes(size), i * every, tag=i)
    end = len(sizes) * every + 5
    while t < end:
        out += [(t, len(p)) for p, _ in link.due(t)]
        t = round(t + 0.001, 6)
    return out


def test_delay_and_order() -> None:
    link = Link(Impairment(delay_ms=100, jitter_ms=40), random.Random(1))
    for i in range(200):
        assert link.offer(i.to_bytes(2, "big"), i * 0.005, tag=i)
    assert link.due(0.059) == []  # nothing before the shortest delay (100 - 40 ms)
    got = link.due(10.0)
    assert [tag for _, tag in got] == list(range(200))  # jitter never reorders
    assert link.stats.delivered == 200 and link.stats.lost == 0


def test_rate_limit_paces_and_drops_tail() -> None:
    # 300 kbit/s: a 1250-byte packet takes 33.3 ms on the wire; offered at 600 kbit/s, the
    # queue grows until it holds 200 ms and the rest is dropped at the tail.
    link = Link(Impairment(rate_kbps=300, queue_ms=200), random.Random(0))
    got = run(link, [1250] * 120, 1250 * 8 / 600_000)
    assert link.stats.queue_dropped > 0
    assert link.stats.delivered + link.stats.queue_dropped == 120
    span = got[-1][0] - got[0][0]
    rate = sum(size for _, size in got[1:]) * 8 / span / 1000
    assert 290 < rate < 310, rate
    # The queue filled to its 200 ms and no further; most packets waited over 100 ms.
    assert 0.19 < link.stats.longest_queue_wait_s <= 0.2
    assert link.stats.queue_waits_over_100ms > 50


def test_a_stream_under_the_rate_waits_for_no_one() -> None:
    link = Link(Impairment(rate_kbps=300, queue_ms=500), random.Random(0))
    run(link, [1250] * 100, 1250 * 8 / 200_000)  # 200 kbit/s into 300
    assert link.stats.longest_queue_wait_s == 0.0 and link.stats.queue_waits_over_100ms == 0


def test_random_loss_rate() -> None:
    link = Link(Impairment(loss=0.03), random.Random(7))
    for i in range(20_000):
        link.offer(b"x", i * 0.001)
    assert 0.025 < link.stats.lost / 20_000 < 0.035


def runs_of_loss(spec: Impairment, n: int = 40_000) -> list[int]:
    link = Link(spec, random.Random(3))
    runs, current = [], 0
    for i in range(n):
        if link.offer(b"x", i * 0.001):
            if current:
                runs.append(current)
            current = 0
        else:
            current += 1
    return runs


def test_bursty_loss_keeps_the_rate_and_lengthens_runs() -> None:
    bursty = runs_of_loss(Impairment(loss=0.03, burst_len=5))
    plain = runs_of_loss(Impairment(loss=0.03))
    assert 0.022 < sum(bursty) / 40_000 < 0.038
    assert sum(bursty) / len(bursty) > 3.5  # mean run about 5 packets
    assert sum(plain) / len(plain) < 1.2


def test_outage_drops_only_inside_the_window() -> None:
    link = Link(Impairment(delay_ms=10))
    link.down(1.0, 3.0)
    assert link.offer(b"a", 0.99) and not link.offer(b"b", 1.0)
    assert not link.offer(b"c", 2.99) and link.offer(b"d", 3.0)
    assert [p for p, _ in link.due(4)] == [b"a", b"d"] and link.stats.outage_dropped == 2


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rate_kbps": 0}, "rate_kbps"),
        ({"loss": 1.0}, "loss"),
        ({"delay_ms": 10, "jitter_ms": 20}, "jitter_ms"),
        ({"burst_len": 0.5}, "burst_len"),
        ({"delay_ms": -1}, "delay_ms"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Impairment(**kwargs)  # type: ignore[arg-type]


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, asyncio.get_running_loop().time()))


async def test_relay_delays_real_datagrams_both_ways_and_cuts_them_in_an_outage() -> None:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    server = echo.get_extra_info("sockname")[:2]
    each_way = Impairment(delay_ms=50)
    async with UdpRelay(server, each_way, each_way) as relay:
        client, collect = await loop.create_datagram_endpoint(Collect, remote_addr=relay.address)
        sent = loop.time()
        client.sendto(b"ping")
        data, at = await asyncio.wait_for(collect.got.get(), 5)
        assert data == b"ping" and at - sent >= 0.1  # 50 ms there, 50 ms back

        relay.outage(0.5)
        client.sendto(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(collect.got.get(), 0.3)
        await asyncio.sleep(0.3)
        client.sendto(b"back")
        assert (await asyncio.wait_for(collect.got.get(), 5))[0] == b"back"
        assert relay.up.stats.outage_dropped == 1 and relay.down.stats.delivered == 2
        client.close()
    echo.close()
