"""A user-mode PulseAudio as a child process: the terminal's echo path on a machine without
a sound card.

Null sinks stand in for the hardware. ``speaker`` is what the terminal's loudspeaker plays;
it is a combine sink feeding two null sinks: ``room`` (the air) and ``micbus`` (the
microphone), so everything the speaker plays reaches the microphone, ``echo_gain`` quieter
(the coupling between a speaker and a microphone a few centimetres apart). Near-end speech,
the customer talking, is played into ``micbus`` too. The terminal's own echo canceller
(``edge.teller.echo.module_line``) sits between: the call plays into ``aec_spk`` and reads
``aec_mic``; ``micbus.monitor`` is the microphone before cancellation.

Clients reach it on a private unix socket (``env``); ``play`` and ``record`` use the
ordinary ``paplay`` / ``parecord`` clients, so the real PulseAudio capture and playback path
is what is measured.
"""

from __future__ import annotations

import os
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common import procs
from edge.teller import echo

RATE = 32000  # the sound server's rate; recordings are taken at RECORD_RATE
RECORD_RATE = 16000


class EchoRig:
    """``with EchoRig(workdir) as rig:`` a running sound server with the echo path above."""

    def __init__(self, workdir: Path, echo_gain: str = "70%", adjust_time: int | None = 0) -> None:
        self.dir = workdir
        #: the canceller's drift re-alignment period (``echo.module_line``); None: the default
        self.adjust_time = adjust_time
        self.socket = workdir / "pulse.sock"
        self.echo_gain = echo_gain  # PulseAudio's volume scale: 70% is about -9 dB
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
        env.update(
            HOME=str(self.dir),
            XDG_RUNTIME_DIR=str(self.dir / "run"),
            PULSE_SERVER=f"unix:{self.socket}",
        )
        return env

    def script(self) -> str:
        return "\n".join(
            [
                f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                f"load-module module-null-sink sink_name=room rate={RATE} channels=1",
                f"load-module module-null-sink sink_name=micbus rate={RATE} channels=1",
                # adjust_time=0: no resampling drift between the two halves of the echo path
                "load-module module-combine-sink sink_name=speaker slaves=room,micbus "
                f"rate={RATE} channels=1 adjust_time=0",
                # One clock drives every null sink here, so there is no drift for the
                # canceller's stream re-alignment to correct: under load it only saw
                # scheduling jitter and dropped speaker audio every second, moving the
                # echo's delay mid-utterance (ERLE fell to 14-19 dB in those stretches).
                echo.module_line("micbus.monitor", "speaker", adjust_time=self.adjust_time),
                "",
            ]
        )

    def __enter__(self) -> EchoRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 15.0) -> EchoRig:
        (self.dir / "run").mkdir(parents=True, exist_ok=True)
        script = self.dir / "rig.pa"
        script.write_text(self.script())
        argv = [
            procs.find_binary("pulseaudio"),
            "--daemonize=no",
            "--exit-idle-time=-1",
            "-n",
            "-F",
            str(script),
            "--log-target=stderr",
        ]
        self.proc = procs.start(argv, self.dir / "pulseaudio.log", env=self.env)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "pulseaudio.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"pulseaudio did not come up:\n{log}")
            time.sleep(0.1)
        self._set_echo_gain()
        return self

    def _pactl(self, *args: str) -> str:
        done = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _ready(self) -> bool:
        try:
            return "aec_mic" in self._pactl("list", "short", "sources")
        except RuntimeError:
            return False

    def _set_echo_gain(self) -> None:
        sinks = dict(
            (line.split("\t")[1], line.split("\t")[0])
            for line in self._pactl("list", "short", "sinks").splitlines()
        )
        for line in self._pactl("list", "short", "sink-inputs").splitlines():
            index, sink = line.split("\t")[:2]
            if sink == sinks["micbus"]:  # the combine sink's stream into the microphone
                self._pactl("set-sink-input-volume", index, self.echo_gain)

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc, name="pulseaudio")
            self.proc = None

    # -- clients ------------------------------------------------------------------------

    def play(self, device: str, wav: Path) -> None:
        """Play a WAV file into a sink, to the end."""
        subprocess.run(
            [procs.find_binary("paplay"), f"--device={device}", str(wav)],
            env=self.env,
            check=True,
            timeout=120,
        )

    def record(self, device: str, out: Path) -> subprocess.Popen[bytes]:
        """Start recording a source into ``out`` (16 kHz mono s16); ``stop_recording`` ends it."""
        argv = [
            procs.find_binary("parecord"),
            f"--device={device}",
            "--file-format=wav",
            f"--rate={RECORD_RATE}",
            "--channels=1",
            "--format=s16le",
            str(out),
        ]
        return subprocess.Popen(argv, env=self.env)

    @staticmethod
    def stop_recording(rec: subprocess.Popen[bytes]) -> None:
        rec.terminate()
        rec.wait(timeout=10)


def samples(path: Path) -> NDArray[np.int16]:
    """A mono 16-bit WAV file's samples."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
