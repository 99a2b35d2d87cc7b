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
