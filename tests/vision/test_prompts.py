"""The challenge's voice prompt files, synthesised by the real espeak-ng (Mandarin voice)."""

from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from edge import prompts
from edge.vision.challenge import PROMPTS


def test_every_prompt_the_challenge_says_has_a_spoken_file(tmp_path: Path) -> None:
    index = prompts.synthesize(tmp_path)
    assert json.loads((tmp_path / "index.json").read_text()) == index
    assert set(index["prompts"]) == {"start", *PROMPTS}
    digests = set()
    for key, entry in index["prompts"].items():
        assert entry["text"] == prompts.CATALOGUE[key]
        data = (tmp_path / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        digests.add(entry["sha256"])
        with wave.open(str(tmp_path / entry["file"])) as w:
            seconds = w.getnframes() / w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        assert 1.0 < seconds < 10.0, (key, seconds)
        assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300  # speech, not silence
    assert len(digests) == len(index["prompts"])  # each prompt says something different


def test_a_missing_synthesiser_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(prompts.SynthesisError, match="no-such-espeak not found"):
        prompts.synthesize(tmp_path, espeak="no-such-espeak")
