"""Echo cancellation on the terminal's sound path: ERLE on a user-mode PulseAudio.

The rig (``cuntong.servers.pulse.EchoRig``) runs the terminal's own ``module-echo-cancel``
line (WebRTC audio processing) between null sinks: a teller's Mandarin speech (espeak-ng,
about 22 s) is played through the speaker, the speaker's output reaches the microphone at
``--echo-gain`` (PulseAudio volume; 70% is about -9 dB), then the customer speaks into the
microphone with the speaker silent. Per trial:

- ERLE:       microphone energy before / after the canceller over the far-end speech,
              after 2 s of convergence (and the median 20 ms frame)
- near loss:  how much quieter the customer's speech is after the canceller

With ``--call-path`` the teller's voice is played and the microphone read by the call's
own audio code (``CallMedia(echo_cancel=True)``: ``PulseSpeaker`` and ``PulseMicrophone``)
instead of ``paplay``/``parecord``.

The rig turns the canceller's clock-drift re-alignment off (``adjust_time=0``: its null
sinks share one clock); ``--adjust-time 1`` puts PulseAudio's default back, for comparison.
Each trial also counts the canceller's re-alignments in the sound server's log ("drop
sink"/"drop source": each moves the echo's delay and the canceller converges again).

    .venv/bin/python bench/echo_cancel.py [--trials N] [--echo-gain 70%] [--call-path]
                                          [--adjust-time S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuntong.servers.pulse import EchoRig
from tests.terminal import echo_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--echo-gain", default="70%")
    parser.add_argument("--call-path", action="store_true", help="the call's own audio code")
    parser.add_argument(
        "--adjust-time", type=int, default=0, help="the canceller's re-alignment period (s)"
    )
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]), flush=True)
    erles = []
    for n in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            with EchoRig(Path(tmp), args.echo_gain, adjust_time=args.adjust_time) as rig:
                if args.call_path:
                    os.environ["PULSE_SERVER"] = rig.env["PULSE_SERVER"]
                    trial = asyncio.run(echo_trial.run_call_path(rig, Path(tmp)))
                else:
                    trial = echo_trial.run(rig, Path(tmp))
            log = (Path(tmp) / "pulseaudio.log").read_text(errors="replace")
            realigned = log.count("drop sink") + log.count("drop source")
        erles.append(trial.erle.db)
        print(
            f"trial {n + 1}: ERLE {trial.erle.db:.1f} dB (median frame "
            f"{trial.erle.median_db:.1f} dB, {trial.erle.frames} frames), "
            f"near-end loss {trial.near_loss_db:.1f} dB, re-alignments {realigned}, "
            f"recorder skew {trial.skew_ms:.0f} ms, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"ERLE min {min(erles):.1f} / median {statistics.median(erles):.1f} dB")
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
