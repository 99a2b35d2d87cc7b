"""Spoken prompts: catalogue sentences synthesised by Debian's espeak-ng, cached as WAV files.

The cache is a directory of ``<audio_id>.wav`` files (``prompts.audio_id``: a digest of the
sentence, so a changed sentence gets a new file and an old file is never stale). The fixed
rows are synthesised ahead, at build or install time (``python -m edge.teller.voice DIR``);
a sentence with a number in it (queue position, minutes) is synthesised on the terminal the
first time it is needed, in a worker thread, and kept.

The voice is espeak-ng's Mandarin (``cmn``), slowed for older listeners. The page plays the
file the agent's screen server hands out (``GET /voice/<audio_id>.wav``).
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

from common.errors import CuntongError
from edge.teller import prompts

VOICE = "cmn"
#: words per minute: espeak-ng's default is 175; older customers follow 130 more easily
SPEED = 130


class VoiceError(CuntongError):
    """A prompt could not be synthesised (espeak-ng missing or failing)."""


def synthesize(sentence: str, out: Path, voice: str = VOICE, speed: int = SPEED) -> Path:
    """Speak ``sentence`` into the WAV file ``out`` (written whole, then renamed in place)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise VoiceError("espeak-ng is not installed (scripts/apt-packages.txt lists it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=out.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [espeak, "-v", voice, "-s", str(speed), "-w", tmp, sentence],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0 or os.path.getsize(tmp) <= 44:
            raise VoiceError(
                f"espeak-ng failed on {sentence!r}: {done.stderr.decode(errors='replace')}"
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


class Voice:
    """The terminal's prompt cache: ``await voice.wav(sentence)`` gives the file's bytes."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, sentence: str) -> Path:
        return self.cache_dir / f"{prompts.audio_id(sentence)}.wav"

    async def wav(self, sentence: str) -> bytes:
        path = self.path(sentence)
        lock = self._locks.setdefault(path.name, asyncio.Lock())
        async with lock:  # two pages asking at once synthesise once
            if not path.exists():
                await asyncio.to_thread(synthesize, sentence, path)
        self._locks.pop(path.name, None)
        return await asyncio.to_thread(path.read_bytes)


def chime(rate: int = 22050) -> bytes:
    """A two-note door chime (E6 then C6, 0.45 s each, fading) as a WAV file: the ring
    before "柜员来了" when a customer who asked to be called back is called."""
    frames = bytearray()
    for freq in (1318.5, 1046.5):
        n = int(rate * 0.45)
        for i in range(n):
            fade = (1 - i / n) ** 2
            sample = int(0.5 * 32767 * fade * math.sin(2 * math.pi * freq * i / rate))
            frames += struct.pack("<h", sample)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def build(cache_dir: Path) -> list[Path]:
    """Synthesise every fixed catalogue row into ``cache_dir`` (the build-time step)."""
    voice = Voice(cache_dir)
    made = []
    for key in prompts.FIXED:
        path = voice.path(prompts.text(key))
        if not path.exists():
            synthesize(prompts.text(key), path)
        made.append(path)
    return made


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "voice-cache")
    print(f"{len(build(target))} prompts in {target}")
