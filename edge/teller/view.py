"""What the customer screen shows, as plain data and plain Chinese: pure.

One short sentence per situation, the way a counter clerk would say it to an older
customer; no codes, no English, no numbers they must interpret (minutes, not seconds).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from edge.teller import prompts
from edge.teller.call import Call, Phase, ring_back_offered
from edge.teller.menu import MENU

#: notice code -> the sentence the screen shows after it (a catalogue row each).
NOTICES = {
    code: prompts.text(f"notice.{code}")
    for code in ("refused", "failed", "link_lost", "offline", "cancelled", "ended")
}

#: phase -> catalogue row (the waiting phase is worded by ``wait_said``).
PHASE_KEY = {
    Phase.IDLE: "idle",
    Phase.WAITING: "waiting",
    Phase.CONNECTING: "connecting",
    Phase.IN_CALL: "in_call",
    Phase.RECONNECTING: "notice.link_lost",
    Phase.RATING: "rating",
}
PHASE_TEXT = {phase: prompts.text(key) for phase, key in PHASE_KEY.items()}


def wait_said(position: int | None, expected_wait: float | None) -> prompts.Said:
    """ "前面还有 2 位,预计等待 3 分钟" and its variants."""
    if position is None:
        return prompts.say("waiting")
    ahead = max(0, position - 1)  # the desk counts the customer itself: position 1 = next
    who = "next" if ahead == 0 else "ahead"
    if expected_wait is None:
        return prompts.say(f"waiting.{who}_busy", ahead=ahead)
    if ahead == 0 and expected_wait < 60:
        return prompts.say("waiting.next")
    minutes = max(1, math.ceil(expected_wait / 60))
    return prompts.say(f"waiting.{who}_minutes", ahead=ahead, minutes=minutes)


def wait_text(position: int | None, expected_wait: float | None) -> str:
    return wait_said(position, expected_wait).text


#: What the customer is asked to do while the terminal performs a device step for the desk
#: (shown in large type and spoken, like the liveness prompts that replace it during a
#: challenge): the catalogue's ``step.<name>`` rows.
STEP_TEXT = {
    key.removeprefix("step."): sentence
    for key, sentence in prompts.ROWS.items()
    if key.startswith("step.")
}

#: The customer is told whenever someone else listens in (a supervisor joined the call).
GUEST_TEXT = prompts.text("in_call.guest")


#: After a ring-back, "柜员来了,请回到屏幕前" stays up this long into the call: the customer
#: is walking back, and the chime and sentence must not be cut by the call starting.
CALLED_BACK_S = 20.0


def called_back(call: Call, now: datetime | None) -> bool:
    if not call.ring_back:
        return False
    if call.phase is Phase.CONNECTING:
        return True
    in_call = call.phase is Phase.IN_CALL and call.since is not None and now is not None
    return in_call and (now - call.since).total_seconds() < CALLED_BACK_S  # type: ignore[operator]


def said(call: Call, now: datetime | None = None) -> prompts.Said:
    """The catalogue row the screen shows (and speaks) for this call."""
    if call.phase is Phase.IN_CALL and call.guests:
        return prompts.say("in_call.guest")
    if call.phase is Phase.WAITING and call.ring_back:
        return prompts.say("ring_back.waiting")
    if called_back(call, now):
        return prompts.say("ring_back.called")
    if call.phase is Phase.WAITING:
        return wait_said(call.position, call.expected_wait)
    if call.phase is Phase.IDLE and call.notice in NOTICES:
        return prompts.say(f"notice.{call.notice}")
    return prompts.say(PHASE_KEY[call.phase])


def message(call: Call) -> str:
    return said(call).text


UNLISTED = "unlisted"


def _spoken(
    call: Call, prompt: str | None, locked: str | None, now: datetime, step: str | None = None
) -> prompts.Said:
    if locked is not None:
        return prompts.Said(prompts.key_of(locked) or "locked", locked)
    if prompt:
        # a step outside the catalogue is still shown and spoken; the catalogue test fails on it
        return prompts.Said(prompts.key_of(prompt) or UNLISTED, prompt)
    if step:
        sentence = STEP_TEXT.get(step)
        return prompts.say(f"step.{step}") if sentence else prompts.Said(UNLISTED, step)
    return said(call, now)


#: Rows the page itself shows at a button press (choosing a business, a language, a form,
#: the signature pad, a failed poll): sent with every state, so the page shows and plays
#: catalogue text without words of its own.
SCREEN_ROWS = (
    "choose", "language", "form", "sign", "still_there", "ring_back.button", "trouble",
    "id_first.button",
)  # fmt: skip

#: Card refusals the customer screen words from the catalogue (``id_first.<reason>``).
ID_REFUSALS = ("bad_check_digit", "not_yet_valid", "expired")


def id_first_said(shown: dict[str, Any]) -> prompts.Said:
    """What the screen says after the customer read the ID card before queueing."""
    if shown.get("outcome") == "passed":
        return prompts.say("id_first.read")
    reason = shown.get("refused")
    return prompts.say(f"id_first.{reason}" if reason in ID_REFUSALS else "id_first.error")


def id_first(shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """The before-queue read as the screen shows it: masked name and number, no photo."""
    if shown is None:
        return None
    keep = ("outcome", "name", "id_number", "elderly", "refused")
    return {**{k: shown.get(k) for k in keep}, "said": id_first_said(shown).to_dict()}


#: Screens that give up when nobody touches them: seconds of no touch, and how long before
#: that the page asks "您还在吗?" out loud. Generous on purpose: nothing rushes the customer.
#: Choosing returns to the start; rating is skipped (the call itself is never timed out).
TIMEOUTS = {"choose": {"after_s": 180, "warn_s": 60}, "rating": {"after_s": 120, "warn_s": 45}}


def view(
    call: Call,
    paperwork: Any,
    now: datetime,
    prompt: str | None = None,
    locked: str | None = None,
    volume: int = 80,
    timeouts: dict[str, dict[str, int]] = TIMEOUTS,
    step: str | None = None,
    id_shown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The screen's whole state as JSON-ready data.

    ``prompt``: a liveness challenge step ("请眨眼") in progress, shown instead of the usual
    sentence; ``locked``: the operator's lock message (``lock_screen`` command): the screen
    shows only that and offers nothing; ``step``: the device step the terminal performs now
    (``STEP_TEXT``). ``voice``: the same sentence as a catalogue row and its audio file;
    ``volume`` (0-100, the live configuration's ``voice_volume``) is how loud the page
    plays it. ``id_shown``: the ID card read before queueing (先刷身份证), if any."""
    spoken = _spoken(call, prompt, locked, now, step)
    return {
        "phase": call.phase.value,
        "locked": locked is not None,
        "message": spoken.text,
        "voice": spoken.to_dict(),
        "volume": volume,
        "timeouts": timeouts,
        # a long queue: offer to call the customer back; called back: ring before speaking
        "ring_back_offer": locked is None and ring_back_offered(call),
        "chime": called_back(call, now),
        "prompts": {key: prompts.say(key).to_dict() for key in SCREEN_ROWS},
        "languages": [{"code": c, "label": label} for c, label in prompts.LANGUAGES],
        "step": step,
        "id_read": id_first(id_shown) if call.phase is Phase.IDLE else None,
        "notice": call.notice,
        "position": call.position,
        "expected_wait": call.expected_wait,
        "seconds": round((now - call.since).total_seconds()) if call.since else 0,
        "menu": [{"code": c, "label": label} for c, label in MENU],
        "screen": paperwork.screen,
        "form": paperwork.form,
        "sign": paperwork.sign,
    }
