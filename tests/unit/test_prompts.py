"""The prompt catalogue: every state the customer screen can show has a row, and every row
speaks (espeak-ng, a real WAV with sound in it).

This is the build check the issue asks for: a new screen state whose sentence is not a
catalogue row fails ``test_every_state_the_view_can_produce_has_a_prompt``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import struct
import wave
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.wire import live_config
from edge.teller import prompts, view, voice
from edge.teller.call import Call, Phase
from edge.vision.challenge import PROMPTS as LIVENESS_STEPS

NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
PAPERWORK = SimpleNamespace(screen=None, form=None, sign=None)
NOTICES = (None, "refused", "failed", "link_lost", "offline", "cancelled", "ended", "odd")


def every_state() -> list[dict[str, object]]:
    """What ``view.view`` returns across phases, notices, queue numbers, guests, liveness
    steps and the operator's lock."""
    out = []
    queue = [(None, None), (1, None), (1, 30.0), (1, 300.0), (4, None), (4, 600.0)]
    for phase, notice, (position, wait), guests, ring_back, since in itertools.product(
        Phase, NOTICES, queue, ((), ("supervisor",)), (False, True), (NOW, NOW - HOUR)
    ):
        call = Call(phase, None, None, "s1", position, wait, None, since, notice)
        call = replace(call, guests=guests, ring_back=ring_back)
        out.append(view.view(call, PAPERWORK, NOW))
    for step in LIVENESS_STEPS.values():
        out.append(view.view(Call(phase=Phase.IN_CALL), PAPERWORK, NOW, prompt=step))
    out.append(view.view(Call(), PAPERWORK, NOW, locked=prompts.text("locked")))
    return out


def test_every_state_the_view_can_produce_has_a_prompt() -> None:
    states = every_state()
    assert len(states) > 2000
    keys = {state["voice"]["key"] for state in states}  # the walk reaches the new states
    assert {"ring_back.waiting", "ring_back.called", "in_call.guest", "liveness.blink"} <= keys
    for state in states:
        said = state["voice"]
        assert said["key"] in prompts.ROWS, f"{state['message']!r} has no catalogue row"
        # what the screen shows is what it speaks, and both are the row's own text
        assert state["message"] == said["text"]
        template = prompts.ROWS[said["key"]]
        if not prompts.fields(template):
            assert said["text"] == template
        assert said["audio"] == f"/voice/{prompts.audio_id(said['text'])}.wav"
        for key, row in state["prompts"].items():
            assert row["text"] == prompts.ROWS[key]


def test_the_check_fails_on_a_sentence_outside_the_catalogue() -> None:
    # a liveness step worded somewhere else, as a colleague's new state would be
    state = view.view(Call(phase=Phase.IN_CALL), PAPERWORK, NOW, prompt="请点点头")
    assert state["voice"]["key"] == view.UNLISTED
    assert view.UNLISTED not in prompts.ROWS
    with pytest.raises(KeyError, match="no prompt 'nod' in the catalogue"):
        prompts.text("nod")


def test_queue_sentences_render_the_numbers() -> None:
    assert view.wait_text(3, 130.0) == "前面还有 2 位,预计等待 3 分钟"
    assert view.wait_text(1, 20.0) == "马上就轮到您了,请稍候"
    assert view.wait_text(2, None) == "前面还有 1 位,柜员都在忙,请稍候"
    assert view.wait_text(None, None) == prompts.ROWS["waiting"]


def _loudness(path: Path) -> tuple[float, float, float]:
    """(seconds, peak dBFS of 50 ms windows, share of windows above -40 dBFS)."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    window = rate // 20
    levels = []
    for i in range(0, len(samples) - window, window):
        chunk = samples[i : i + window]
        rms = math.sqrt(sum(s * s for s in chunk) / window) or 1e-9
        levels.append(20 * math.log10(rms / 32768))
    loud = sum(level > -40 for level in levels) / len(levels)
    return len(samples) / rate, max(levels), loud


def test_every_prompt_is_a_playable_wav_with_speech(tmp_path: Path) -> None:
    made = voice.build(tmp_path)
    sentences = [prompts.text(key) for key in prompts.FIXED]
    sentences += [  # every templated row, rendered as the queue would
        prompts.text(key, ahead=3, minutes=12)
        for key, text in prompts.ROWS.items()
        if prompts.fields(text)
    ]
    paths = made + [voice.synthesize(s, tmp_path / f"{i}.wav") for i, s in enumerate(sentences)]
    assert len(made) == len(prompts.FIXED)
    for path in paths:
        seconds, peak, loud = _loudness(path)
        assert seconds > 0.5, path
        assert peak > -20, f"{path}: peak {peak:.1f} dBFS"
        assert loud > 0.3, f"{path}: only {loud:.0%} of it has sound"


def test_liveness_steps_are_catalogue_rows() -> None:
    for step, sentence in LIVENESS_STEPS.items():
        assert prompts.ROWS[f"liveness.{step}"] == sentence


def test_voice_volume_is_live_configuration() -> None:
    assert live_config.check({"voice_volume": 35}).voice_volume == 35
    with pytest.raises(live_config.InvalidConfig) as err:
        live_config.check({"voice_volume": 120})
    assert err.value.field == "voice_volume"


def test_the_pin_pads_words_are_catalogue_rows() -> None:
    from edge.steps.card import AGAIN_TEXT, CURRENT_TEXT, NEW_TEXT

    assert (prompts.ROWS["pin.current"], prompts.ROWS["pin.new"], prompts.ROWS["pin.again"]) == (
        CURRENT_TEXT,
        NEW_TEXT,
        AGAIN_TEXT,
    )
