"""Lost Opus packets on the terminal's receive path: recovered from in-band FEC, else
concealed, and an outage left as a hole.

The packets come from the terminal's own sender configuration (``encoder_settings`` and
``encoding.configure_opus`` on aiortc's Opus encoder); the decoder is real libopus. The
signal changes pitch every 20 ms, so concealment that only extends the last packet cannot
guess a lost one, while FEC carries it.
"""

from __future__ import annotations

import fractions

import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame

from edge.teller.encoding import configure_opus
from edge.teller.receive import ConcealingOpusDecoder
from edge.vision.roi import encoder_settings

RATE = 48_000


def opus_packets(loss: float, frames: int = 150) -> list[tuple[bytes, int]]:
    """(payload, RTP timestamp) as the terminal sends them on a link with this loss."""
    encoder = OpusEncoder()
    configure_opus(encoder, encoder_settings(300, loss))
    rng = np.random.default_rng(3)
    phase, out = 0.0, []
    for i, hz in enumerate(rng.choice([250, 400, 550, 700, 850, 1000], frames)):
        t = np.arange(960)
        tone = 8000 * np.sin(phase + 2 * np.pi * hz * t / RATE) + 1500 * rng.standard_normal(960)
        phase += 2 * np.pi * hz * 960 / RATE
        frame = AudioFrame.from_ndarray(tone.astype(np.int16).reshape(1, -1), layout="mono")
        frame.sample_rate, frame.pts = RATE, i * 960
        frame.time_base = fractions.Fraction(1, RATE)
        payloads, ts = encoder.encode(frame)
        out += [(payloads[0], ts)] if payloads else []
    return out


def decode(packets: list[tuple[bytes, int]], drop: set[int]) -> dict[int, tuple[str, np.ndarray]]:
    decoder, out = ConcealingOpusDecoder(), {}
    for i, (data, ts) in enumerate(packets):
        if i not in drop:
            for f in decoder.decode(JitterFrame(data, ts)):
                out[f.pts] = (str(f.opaque), f.to_ndarray().reshape(-1)[::2].astype(float))
    return out


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.abs(np.fft.rfft(a)), np.abs(np.fft.rfft(b)))[0, 1])


def test_a_lost_packet_comes_back_from_the_next_ones_fec() -> None:
    packets = opus_packets(loss=0.05)  # the village link: FEC on, 40 ms packets
    assert packets[1][1] - packets[0][1] == 1920
    drop = set(range(10, 70, 6))
    clean, lossy = decode(packets, set()), decode(packets, drop)
    plc_only = ConcealingOpusDecoder()
    plc_only._conceal = lambda start, missing, _: [  # type: ignore[method-assign]
        plc_only._frame(plc_only._run(None, missing, fec=False), start, "plc")
    ]
    plc: dict[int, np.ndarray] = {}
    for i, (data, ts) in enumerate(packets):
        if i not in drop:
            for f in plc_only.decode(JitterFrame(data, ts)):
                plc[f.pts] = f.to_ndarray().reshape(-1)[::2].astype(float)
    lost = [packets[i][1] for i in sorted(drop)]
    assert all(lossy[ts][0] == "fec" for ts in lost)
    # No hole: every packet's stretch came out of the decoder.
    assert sorted(lossy) == sorted(clean)
    fec_like = np.mean([likeness(lossy[ts][1], clean[ts][1]) for ts in lost])
    plc_like = np.mean([likeness(plc[ts], clean[ts][1]) for ts in lost])
    assert fec_like > plc_like + 0.2, (fec_like, plc_like)


def test_without_fec_a_lost_packet_is_concealed_and_a_run_of_them_too() -> None:
    packets = opus_packets(loss=0.0)  # 20 ms packets, no FEC
    out = decode(packets, {20, 40, 41, 42})
    kinds = [out[packets[i][1]][0] for i in (20, 40, 41, 42)]
    assert kinds == ["fec", "plc", "plc", "fec"]  # FEC asked of the packet after; PLC before
    assert len(out) == len(packets)


def test_an_outage_is_left_as_a_hole() -> None:
    packets = opus_packets(loss=0.0)
    out = decode(packets, set(range(50, 70)))  # 400 ms: more than the decoder invents
    assert all(packets[i][1] not in out for i in range(50, 70))
    assert out[packets[70][1]][0] == "decoded"
