"""Voice prompt files for the liveness challenge, synthesised with espeak-ng (Mandarin).

    python -m edge.prompts OUT_DIR [--voice cmn] [--speed 140]

Writes one WAV per prompt the challenge can say (`edge.vision.challenge.PROMPTS`, plus the
opening instruction) and `index.json` (action → text, file, SHA-256, voice, espeak-ng
version), so a terminal image can ship them and a player can look them up by action. The
voice is espeak-ng's formant synthesiser: intelligible, robotic. A bank that wants a human
voice records the same texts and writes the same index.

Partial: playing them on the terminal is the customer-screen work (the agent today shows the
prompt text); nothing here plays audio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from common.errors import CuntongError
from edge.vision.challenge import PROMPTS

#: Every prompt a check can say, by key: the opening instruction, then one per action.
CATALOGUE = {"start": "请正对摄像头，按提示完成动作", **PROMPTS}


class SynthesisError(CuntongError):
    """espeak-ng is missing or failed."""


def synthesize(
    out: Path, voice: str = "cmn", speed: int = 140, espeak: str = "espeak-ng"
) -> dict[str, Any]:
    """Write `<key>.wav` for every catalogue entry and `index.json`; return the index."""
    exe = shutil.which(espeak)
    if exe is None:
        raise SynthesisError(f"{espeak} not found (Debian package espeak-ng)")
    out.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    index: dict[str, Any] = {"voice": voice, "engine": version.stdout.strip(), "prompts": {}}
    for key, text in CATALOGUE.items():
        wav = out / f"{key}.wav"
        done = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-w", str(wav), text],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not wav.is_file():
            raise SynthesisError(f"espeak-ng failed on {key!r}: {done.stderr.strip()}")
        digest = hashlib.sha256(wav.read_bytes()).hexdigest()
        index["prompts"][key] = {"text": text, "file": wav.name, "sha256": digest}
    (out / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=2) + "\n")
    return index


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--voice", default="cmn")
    ap.add_argument("--speed", type=int, default=140, help="words per minute")
    args = ap.parse_args(argv)
    index = synthesize(args.out, args.voice, args.speed)
    for key, p in index["prompts"].items():
        print(f"{key}: {p['file']} {p['text']}")


if __name__ == "__main__":
    main()
