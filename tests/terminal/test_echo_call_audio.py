"""The call's own microphone and speaker through the echo canceller (``echo_cancel`` on).

On the user-mode PulseAudio rig (``cuntong.servers.pulse.EchoRig``): the teller's voice is
played by the terminal's ``PulseSpeaker`` into the canceller's sink, and the call's
microphone track (``CallMedia(echo_cancel=True).microphone()``) reads the canceller's
source. The echo must be mostly gone from what the call would send, and the customer's
own voice must pass. Floors as in ``test_echo_cancel.py`` (the energy figure sits close to
20 dB; docs/benchmarks/echo-cancel.md has the figures).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cuntong.servers.pulse import EchoRig
from edge.teller import echo
from edge.teller.media import CallMedia
from edge.teller.sources import PulseMicrophone
from tests.terminal import echo_trial

pytestmark = pytest.mark.servers


def test_echo_cancel_setting_routes_the_call_audio_to_the_canceller() -> None:
    media = CallMedia(simulate=False, echo_cancel=True)
    mic = media.microphone()
    assert isinstance(mic, PulseMicrophone) and mic.source == echo.MIC_SOURCE
    assert media.speaker == f"pulse:{echo.SPEAKER_SINK}"


async def test_the_call_audio_loses_its_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EchoRig(tmp_path) as rig:
        monkeypatch.setenv("PULSE_SERVER", rig.env["PULSE_SERVER"])
        trial = await echo_trial.run_call_path(rig, tmp_path, echo_trial.TELLER_SHORT)
    assert trial.erle.frames > 200
    assert trial.erle.median_db >= 20.0, trial
    assert trial.erle.db >= 12.0, trial
    assert trial.near_loss_db < 6.0, trial
