"""Routing decision time with 1,000 customers waiting.

Scenario: 120 tellers with seeded random skills (Mandarin, dialect, sign-language and
minority-language speakers among them) all start busy; 1,000 requests arrive over the
first minute (35 % elderly, 5 % high-risk business, a mix of languages), so the queue
reaches 1,000. Then tellers finish calls one by one in simulated time; every time a
teller becomes free the board decides (``Board.dispatch``), 10 % of offers are declined,
every call lasts 3–8 minutes plus 30 s of wrap-up, until all 1,000 are routed.

Measured: wall time of each ``dispatch`` call (one routing decision over the whole queue),
of each ``enqueue``, and of ``queue_status`` for a request at the back of the queue.

    .venv/bin/python bench/routing.py
"""

from __future__ import annotations

import heapq
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.sessions.estimate import HandleTimes, queue_status
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills, business_table

REQUESTS = 1000
TELLERS = 120
SEED = 5

LANGS = [("cmn", 70), ("zh-shaanxi", 12), ("zh-sichuan", 5), ("csl", 3), ("ug", 4), ("bo", 3),
         ("ii", 2), ("mn", 1)]  # fmt: skip


def make_board(rng: random.Random) -> Board:
    board = Board()
    names = sorted(business_table())
    for n in range(TELLERS):
        businesses = {b: rng.randint(1, 5) for b in rng.sample(names, rng.randint(3, 8))}
        languages = {"cmn"}
        extra = rng.random()
        if extra < 0.25:
            languages.add("zh-shaanxi")
        elif extra < 0.32:
            languages.add("csl")
        elif extra < 0.45:
            languages.add(rng.choice(["ug", "bo", "ii", "mn", "zh-sichuan"]))
        board.add_teller(f"t{n:03}", Skills.of(businesses, languages), 0.0)
        board.set_state(f"t{n:03}", TellerState.BUSY, 0.0)
    return board


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    rng = random.Random(SEED)
    board = make_board(rng)
    langs = [code for code, _ in LANGS]
    weights = [w for _, w in LANGS]
    risky = [b for b, v in business_table().items() if v.high_risk]
    plain = [b for b, v in business_table().items() if not v.high_risk]

    enqueue_ms: list[float] = []
    for n in range(REQUESTS):
        business = rng.choice(risky) if rng.random() < 0.05 else rng.choice(plain)
        lang = rng.choices(langs, weights)[0]
        t0 = time.perf_counter()
        board.enqueue(f"r{n:04}", business, lang, n * 0.06, elderly=rng.random() < 0.35)
        enqueue_ms.append((time.perf_counter() - t0) * 1e3)

    times = HandleTimes()
    t0 = time.perf_counter()
    last = max(board.requests, key=lambda rid: board.requests[rid].key)
    status = queue_status(board, last, 60.0, times)
    status_ms = (time.perf_counter() - t0) * 1e3

    # Worst case: the one free teller qualifies for nobody, so the decision scans all 1000.
    board.add_teller("odd", Skills.of({"insurance": 5}, {"mn"}), 60.0)
    for rid in [r.id for r in board.waiting() if r.language == "mn"]:
        board.abandon(rid, 60.0)
    board.set_state("odd", TellerState.AVAILABLE, 60.0)
    depth_full = len(board.requests)
    scan_ms = []
    for _ in range(200):
        t0 = time.perf_counter()
        assert board.dispatch(60.0) == []
        scan_ms.append((time.perf_counter() - t0) * 1e3)
    board.set_state("odd", TellerState.OFFLINE, 60.0)

    # Event queue: (time, kind, teller id). Tellers free up at random times in the first 5 min.
    events = [(60 + rng.uniform(0, 300), "free", t) for t in board.tellers]
    heapq.heapify(events)
    decide_ms: list[float] = []
    depth_at_decision: list[int] = []
    routed = offers_made = 0
    now = 60.0
    while routed < depth_full and events:
        now, kind, teller_id = heapq.heappop(events)
        if kind == "free":
            board.set_state(teller_id, TellerState.AVAILABLE, now)
        elif kind == "hangup":
            board.hang_up(teller_id, now)
            heapq.heappush(events, (now + 30, "free", teller_id))
            continue
        board.tick(now)
        depth_at_decision.append(len(board.requests))
        t0 = time.perf_counter()
        offers = board.dispatch(now)
        decide_ms.append((time.perf_counter() - t0) * 1e3)
        offers_made += len(offers)
        for offer in offers:
            if rng.random() < 0.10:
                board.decline(offer.request_id, now + 2)
                heapq.heappush(events, (now + 2.5, "retry", offer.teller_id))
            else:
                board.accept(offer.request_id, now + 3)
                routed += 1
                heapq.heappush(events, (now + rng.uniform(180, 480), "hangup", offer.teller_id))

    deep = [ms for ms, d in zip(decide_ms, depth_at_decision, strict=True) if d >= 900]
    lines = [
        f"routing benchmark: {REQUESTS} requests, {TELLERS} tellers, seed {SEED}",
        f"  routed {routed} of {depth_full} (the odd teller's language dropped), "
        f"{offers_made} offers, {now / 3600:.1f} h simulated",
        f"  dispatch decisions: {len(decide_ms)}; queue depth at decision max "
        f"{max(depth_at_decision)}, median {statistics.median(depth_at_decision):.0f}",
        f"  dispatch ms: p50 {pct(decide_ms, 50):.3f}  p99 {pct(decide_ms, 99):.3f}  "
        f"max {max(decide_ms):.3f}",
        f"  dispatch ms with >= 900 waiting ({len(deep)} decisions): "
        f"p50 {pct(deep, 50):.3f}  p99 {pct(deep, 99):.3f}",
        f"  worst case, one free teller qualified for none of {depth_full} waiting: "
        f"p50 {pct(scan_ms, 50):.3f}  p99 {pct(scan_ms, 99):.3f} ms",
        f"  enqueue ms: p50 {pct(enqueue_ms, 50):.4f}  p99 {pct(enqueue_ms, 99):.4f}",
        f"  queue_status of the last of {REQUESTS}: {status_ms:.2f} ms "
        f"(position {status.position}, expected wait {status.expected_wait:.0f} s)",
    ]
    print("\n".join(lines))
    print("  reproduce: .venv/bin/python bench/routing.py")


if __name__ == "__main__":
    main()
