"""One echo-cancellation trial on the rig, shared by the test and bench/echo_cancel.py.

The far end is a teller talking (espeak-ng, Mandarin) played into the canceller's speaker;
after it, the customer talks (near end, a higher voice) into the microphone with the
speaker silent. Both the microphone before the canceller and the canceller's output are
recorded for the whole trial.
"""

from __future__ import annotations

import time
import wave
from dataclasses import dataclass
from pathlib import Path

from cuntong.servers.pulse import RECORD_RATE, EchoRig, samples
from edge.teller import echo
from edge.teller.voice import synthesize

TELLER = (
    "您好,我是远程柜员。请把身份证放在读卡器上,然后看着屏幕,眨眨眼。"
    "您的养老金认证已经办好了,还有什么需要帮忙的吗?"
)
#: the first two sentences, about 10 s: enough for the test
TELLER_SHORT = TELLER[: TELLER.index("眼。") + 2]
CUSTOMER = "好的,我知道了,谢谢您。"


@dataclass(frozen=True)
class Trial:
    erle: echo.Erle
    near_loss_db: float  # how much quieter the customer is after the canceller


def run(rig: EchoRig, work: Path, teller: str = TELLER) -> Trial:
    far = synthesize(teller, work / "far.wav", speed=150)
    near = synthesize(CUSTOMER, work / "near.wav", speed=140)
    before, after = work / "mic.wav", work / "aec.wav"
    recs = [rig.record("micbus.monitor", before), rig.record("aec_mic", after)]
    time.sleep(0.5)
    rig.play("aec_spk", far)
    rig.play("micbus", near)
    time.sleep(0.3)
    for rec in recs:
        rig.stop_recording(rec)
    mic, out = samples(before), samples(after)
    # the far-end part ends where the far-end file ends (after the 0.5 s lead-in)
    with wave.open(str(far)) as w:
        far_seconds = w.getnframes() / w.getframerate()
    far_samples = int((far_seconds + 0.5) * RECORD_RATE)
    near_from = far_samples + RECORD_RATE // 2
    result = echo.erle(mic[:far_samples], out[:far_samples], RECORD_RATE)
    near_loss = echo.level_dbfs(mic[near_from:]) - echo.level_dbfs(out[near_from:])
    return Trial(result, near_loss)


async def run_call_path(rig: EchoRig, work: Path, teller: str = TELLER) -> Trial:
    """The same trial through the call's own audio path: the teller's voice (decoded
    frames) played by the terminal's ``PulseSpeaker`` into the canceller's sink, the
    microphone read by the call's own microphone track (``CallMedia(echo_cancel=True)``).
    The microphone before the canceller is read the same way (``micbus.monitor``), so both
    recordings have one clock and one start."""
    import asyncio

    import av
    import numpy as np
    from aiortc.mediastreams import MediaStreamError

    from edge.teller.media import CallMedia
    from edge.teller.sources import PULSE_RATE, PulseMicrophone, PulseSpeaker

    far = synthesize(teller, work / "far.wav", speed=150)
    near = synthesize(CUSTOMER, work / "near.wav", speed=140)
    media = CallMedia(simulate=False, echo_cancel=True)
    mic, raw = media.microphone(), PulseMicrophone("micbus.monitor")
    heard: dict[str, list[np.ndarray]] = {"after": [], "before": []}

    async def collect(track: object, key: str) -> None:
        try:
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                heard[key].append(frame.to_ndarray().reshape(-1))
        except MediaStreamError:
            return

    tasks = [
        asyncio.create_task(collect(mic, "after")),
        asyncio.create_task(collect(raw, "before")),
    ]
    await asyncio.sleep(0.5)
    async with PulseSpeaker(media.speaker.removeprefix("pulse:")) as play:
        with av.open(str(far)) as container:
            for frame in container.decode(audio=0):  # the teller's voice, as decoded frames
                await play(frame)
    await asyncio.sleep(0.5)  # what the speaker still holds
    await asyncio.to_thread(rig.play, "micbus", near)
    await asyncio.sleep(0.3)
    for track in (mic, raw):
        track.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    before, after = (np.concatenate(heard[k]) for k in ("before", "after"))
    with wave.open(str(far)) as w:
        far_seconds = w.getnframes() / w.getframerate()
    far_samples = int((far_seconds + 1.0) * PULSE_RATE)
    near_from = far_samples + PULSE_RATE // 2
    result = echo.erle(before[:far_samples], after[:far_samples], PULSE_RATE)
    near_loss = echo.level_dbfs(before[near_from:]) - echo.level_dbfs(after[near_from:])
    return Trial(result, near_loss)
