"""Acoustic echo cancellation on the terminal: the sound server's settings, and how well it works.

The terminal's speaker and microphone sit a few centimetres apart. The call's audio runs
through PulseAudio's ``module-echo-cancel`` with the WebRTC audio processing library: the
far end (the teller) is played into its sink, the microphone is read from its source, and
the canceller removes from the microphone what the speaker played.

``module_line`` is the one line a terminal's PulseAudio configuration loads (and the test
rig, ``cuntong.servers.pulse``, loads the same). Gain control and noise suppression are
off: the call's Opus encoder and the teller's ears deal with level, and a rig measuring
echo cancellation must not have a noise gate flatter it.

``erle`` is the measure (pure, arrays in, numbers out): echo return loss enhancement, the
energy of the microphone signal before the canceller over the energy after it, taken on
the frames where the far end is talking and the near end is silent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: what the call reads and plays with echo cancellation on (``CallMedia(echo_cancel=True)``):
#: the names ``module_line`` gives with its default ``name``
MIC_SOURCE = "aec_mic"
SPEAKER_SINK = "aec_spk"

#: webrtc audio processing options (PulseAudio's ``aec_args``)
AEC_ARGS: dict[str, int] = {
    "analog_gain_control": 0,
    "digital_gain_control": 0,
    "noise_suppression": 0,
    "high_pass_filter": 0,
}


def module_line(
    source_master: str, sink_master: str, name: str = "aec", adjust_time: int | None = None
) -> str:
    """The ``load-module module-echo-cancel`` line: ``<name>_mic`` is the cancelled
    microphone, ``<name>_spk`` the speaker the call plays into.

    ``adjust_time`` (seconds, 0 = off) is how often the module re-aligns the speaker and
    microphone streams against clock drift; unset keeps PulseAudio's default (1 s), which a
    terminal with a real sound card needs. Each re-alignment drops speaker audio, so the
    echo's delay jumps and the canceller converges again; a rig whose sinks run on one
    clock has no drift to correct and sets it to 0 (``cuntong.servers.pulse.EchoRig``)."""
    args = " ".join(f"{k}={v}" for k, v in AEC_ARGS.items())
    adjust = "" if adjust_time is None else f"adjust_time={adjust_time} "
    return (
        f"load-module module-echo-cancel source_master={source_master} "
        f"sink_master={sink_master} aec_method=webrtc {adjust}source_name={name}_mic "
        f'sink_name={name}_spk aec_args="{args}"'
    )


@dataclass(frozen=True, slots=True)
class Erle:
    db: float  # energy over all measured frames
    median_db: float  # the typical 20 ms frame
    frames: int  # 20 ms frames measured


def _frame_power(x: NDArray[np.float64], frame: int) -> NDArray[np.float64]:
    usable = len(x) // frame * frame
    return np.asarray((x[:usable].reshape(-1, frame) ** 2).mean(axis=1), dtype=np.float64)


def erle(
    before: NDArray[np.int16],
    after: NDArray[np.int16],
    rate: int,
    skip_s: float = 2.0,
    floor_dbfs: float = -50.0,
) -> Erle:
    """ERLE of two recordings that started together: ``before`` the canceller's input,
    ``after`` its output. The first ``skip_s`` (the canceller converging) and frames whose
    input is under ``floor_dbfs`` (pauses) are left out. ValueError if nothing is left."""
    n = min(len(before), len(after))
    frame = rate // 50
    p_in = _frame_power(before[:n].astype(np.float64), frame)
    p_out = _frame_power(after[:n].astype(np.float64), frame)
    active = p_in > 32768.0**2 * 10 ** (floor_dbfs / 10)
    active[: int(skip_s * 50)] = False
    if not active.any():
        raise ValueError("no far-end speech above the floor to measure")
    p_out = np.maximum(p_out, 1e-3)  # a digitally silent frame: a large, finite figure
    return Erle(
        db=float(10 * np.log10(p_in[active].sum() / p_out[active].sum())),
        median_db=float(np.median(10 * np.log10(p_in[active] / p_out[active]))),
        frames=int(active.sum()),
    )


def lag(reference: NDArray[np.int16], other: NDArray[np.int16], max_lag: int) -> int:
    """How many samples ``other`` runs behind ``reference`` (negative: ahead), within
    ``max_lag``: the peak of their cross-correlation. Two recordings of the same sound
    started by separate clients start at different moments; this is how far apart."""
    a, b = reference.astype(np.float64), other.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    cc = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    scores = np.concatenate([cc[: max_lag + 1], cc[size - max_lag :]])
    return int(lags[int(np.argmax(scores))])


def level_dbfs(x: NDArray[np.int16]) -> float:
    """RMS level of a recording in dBFS."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1e-9
    return 20 * float(np.log10(rms / 32768))
