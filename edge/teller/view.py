"""What the customer screen shows, as plain data and plain Chinese: pure.

One short sentence per situation, the way a counter clerk would say it to an older
customer; no codes, no English, no numbers they must interpret (minutes, not seconds).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from edge.teller.call import Call, Phase
from edge.teller.menu import MENU

NOTICES = {
    "refused": "这项业务暂时不能视频办理,请到网点办理",
    "failed": "通话中断了,请稍后再试",
    "link_lost": "网络不稳定,正在重新连接",
    "offline": "网络连不上,请稍后再试",
    "cancelled": "已经取消了",
    "ended": "通话已结束",
}

PHASE_TEXT = {
    Phase.IDLE: "需要帮忙吗?请按“视频柜员”",
    Phase.WAITING: "正在为您排队,请稍候",
    Phase.CONNECTING: "柜员来了,正在接通",
    Phase.IN_CALL: "正在和柜员通话",
    Phase.RECONNECTING: NOTICES["link_lost"],
    Phase.RATING: "这次服务您满意吗?",
}


def wait_text(position: int | None, expected_wait: float | None) -> str:
    """ "前面还有 2 位,预计等待 3 分钟" and its variants."""
    if position is None:
        return "正在为您排队,请稍候"
    ahead = max(0, position - 1)  # the desk counts the customer itself: position 1 = next
    head = "马上就轮到您了" if ahead == 0 else f"前面还有 {ahead} 位"
    if expected_wait is None:
        return f"{head},柜员都在忙,请稍候"
    if ahead == 0 and expected_wait < 60:
        return f"{head},请稍候"
    minutes = max(1, math.ceil(expected_wait / 60))
    return f"{head},预计等待 {minutes} 分钟"


#: What the customer is asked to do while the terminal performs a device step for the desk
#: (shown in large type, like the liveness prompts that replace it during a challenge).
STEP_TEXT = {
    "id_card_read": "请把身份证放在读卡区",
    "face_match": "请看着摄像头,正在核对您和身份证照片",
    "liveness": "请看着摄像头,保持不动",
    "active_liveness": "请看着摄像头,按提示做动作",
    "card_read": "请插入银行卡",
    "pin_entry": "请在密码键盘上输入密码,输完按确认",
    "voucher_capture": "请把凭证放在拍摄区",
    "e_signature": "请在屏幕上签名",
}

#: The customer is told whenever someone else listens in (a supervisor joined the call).
GUEST_TEXT = "正在和柜员通话,银行主管也在旁听"


def message(call: Call) -> str:
    if call.phase is Phase.IN_CALL and call.guests:
        return GUEST_TEXT
    if call.phase is Phase.WAITING:
        return wait_text(call.position, call.expected_wait)
    if call.phase is Phase.IDLE and call.notice in NOTICES:
        return NOTICES[call.notice]
    return PHASE_TEXT[call.phase]


def view(
    call: Call,
    paperwork: Any,
    now: datetime,
    prompt: str | None = None,
    locked: str | None = None,
    step: str | None = None,
) -> dict[str, Any]:
    """The screen's whole state as JSON-ready data.

    ``prompt``: a liveness challenge step ("请眨眼") in progress, shown instead of the usual
    sentence; ``locked``: the operator's lock message (``lock_screen`` command): the screen
    shows only that and offers nothing; ``step``: the device step the terminal performs now
    (``STEP_TEXT``)."""
    return {
        "phase": call.phase.value,
        "locked": locked is not None,
        "message": locked or prompt or STEP_TEXT.get(step or "") or message(call),
        "step": step,
        "notice": call.notice,
        "position": call.position,
        "expected_wait": call.expected_wait,
        "seconds": round((now - call.since).total_seconds()) if call.since else 0,
        "menu": [{"code": c, "label": label} for c, label in MENU],
        "screen": paperwork.screen,
        "form": paperwork.form,
        "sign": paperwork.sign,
    }
