"""The customer screen's prompt catalogue: one row per thing the screen says, shown and spoken.

Pure data and pure functions. Every sentence the customer screen shows comes from ``ROWS``
(``edge.teller.view`` words its states with ``text``), and the same sentence is what
``edge.teller.voice`` synthesises and the page plays, so text and voice cannot disagree.
To add a screen state, add a row here; ``tests/unit/test_prompts.py`` walks every state the
view can produce and fails on one whose sentence is not a catalogue row.

A row's text may hold ``{placeholders}`` (queue position, minutes): the rendered sentence is
spoken as rendered, synthesised on the terminal and cached (``edge.teller.voice``).
``FIXED`` rows (no placeholders) are synthesised ahead at build time.

Languages: the screen offers ``LANGUAGES`` (the routing codes of ``cloud.sessions.skills``)
and sends the choice with the request. The prompts themselves are Mandarin only: Debian's
espeak-ng has a Mandarin voice (``cmn``) and no Shaanxi one, so a 陕西话 customer hears
Mandarin prompts and gets a Shaanxi-speaking teller first (documented as partial in
docs/terminal.md).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from typing import Final

#: The languages the customer can choose: (routing code, label on the button).
LANGUAGES: Final[tuple[tuple[str, str], ...]] = (("cmn", "普通话"), ("zh-shaanxi", "陕西话"))
LANGUAGE_CODES: Final = frozenset(code for code, _ in LANGUAGES)

#: key -> sentence. Short, plain, what to do next; minutes, never seconds.
ROWS: Final[dict[str, str]] = {
    # before a call
    "idle": "需要帮忙吗?请按“视频柜员”",
    "choose": "请选择业务",
    "language": "您说普通话还是陕西话?请按一下",
    # 先刷身份证: the ID card read before queueing (optional; the card checks' own words,
    # firmware_adapters.idcard.check.REASONS, for a refused card)
    "id_first.button": "先刷身份证",
    "id_first.read": "身份证读好了,请选择业务",
    "id_first.bad_check_digit": "身份证号码校验失败，请重新放置身份证或使用其他有效证件",
    "id_first.not_yet_valid": "身份证尚未生效，请使用有效证件",
    "id_first.expired": "身份证已过期，请使用有效证件",
    "id_first.error": "没有读到身份证,请把身份证放好再按一次,也可以不刷直接选业务",
    # waiting in the queue
    "waiting": "正在为您排队,请稍候",
    "waiting.next": "马上就轮到您了,请稍候",
    "waiting.next_busy": "马上就轮到您了,柜员都在忙,请稍候",
    "waiting.ahead_busy": "前面还有 {ahead} 位,柜员都在忙,请稍候",
    "waiting.next_minutes": "马上就轮到您了,预计等待 {minutes} 分钟",
    "waiting.ahead_minutes": "前面还有 {ahead} 位,预计等待 {minutes} 分钟",
    # ring-back: a long queue, the customer may step away and is called back
    "ring_back.button": "有空了叫我",
    "ring_back.waiting": "好的,柜员有空时,屏幕会响铃叫您,您可以先坐下歇歇",
    "ring_back.called": "柜员来了,请回到屏幕前",
    # the call
    "connecting": "柜员来了,正在接通",
    "in_call": "正在和柜员通话",
    "in_call.guest": "正在和柜员通话,银行主管也在旁听",
    "rating": "这次服务您满意吗?",
    # the liveness challenge (edge.vision.challenge.PROMPTS words the same steps)
    "liveness.blink": "请眨眨眼",
    "liveness.mouth": "请张张嘴",
    "liveness.shake": "请缓慢摇头",
    # device steps the terminal performs for the desk (edge.teller.view.STEP_TEXT)
    "step.id_card_read": "请把身份证放在读卡区",
    "step.face_match": "请看着摄像头,正在核对您和身份证照片",
    "step.liveness": "请看着摄像头,保持不动",
    "step.active_liveness": "请看着摄像头,按提示做动作",
    "step.card_read": "请插入银行卡",
    "step.pin_entry": "请在密码键盘上输入密码,输完按确认",
    "step.voucher_capture": "请把凭证放在拍摄区",
    "step.e_signature": "请在屏幕上签名",
    # a new PIN on the pad (edge.steps.card: password reset and PIN change)
    "pin.current": "请输入原密码,输完按确认",
    "pin.new": "请输入新密码(6位),输完按确认",
    "pin.again": "请再次输入新密码,输完按确认",
    # signing a form the teller pushed
    "form": "请看清楚,再按“提交”",
    "sign": "请在下面签名,写好了按“确认签名”",
    # how things end, and every failure
    "notice.refused": "这项业务暂时不能视频办理,请到网点办理",
    "notice.failed": "通话中断了,请稍后再试",
    "notice.link_lost": "网络不稳定,正在重新连接",
    "notice.offline": "网络连不上,请稍后再试",
    "notice.cancelled": "已经取消了",
    "notice.ended": "通话已结束",
    "still_there": "您还在吗?还要办理的话,请按一下屏幕",
    "trouble": "终端出了点问题,请稍候",
    "locked": "暂停服务",
}


def fields(template: str) -> tuple[str, ...]:
    """The placeholders of a row's text, in order."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


FIXED: Final = tuple(key for key, text in ROWS.items() if not fields(text))


@dataclass(frozen=True, slots=True)
class Said:
    """One rendered prompt: the row's key and the exact sentence shown and spoken."""

    key: str
    text: str

    @property
    def audio_id(self) -> str:
        return audio_id(self.text)

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "text": self.text, "audio": f"/voice/{self.audio_id}.wav"}


def text(key: str, **values: object) -> str:
    """Row ``key`` rendered; KeyError naming the key when the catalogue lacks it."""
    try:
        template = ROWS[key]
    except KeyError:
        raise KeyError(f"no prompt {key!r} in the catalogue (edge/teller/prompts.py)") from None
    return template.format(**values) if values else template


def say(key: str, **values: object) -> Said:
    return Said(key, text(key, **values))


def audio_id(sentence: str) -> str:
    """The sentence's audio file name: a digest, so a cached file never goes stale."""
    return hashlib.sha256(sentence.encode()).hexdigest()[:24]


def key_of(sentence: str) -> str | None:
    """Which fixed row reads exactly ``sentence`` (a liveness step arrives as its text);
    None for a sentence not in the catalogue (an operator's own lock message)."""
    return _BY_TEXT.get(sentence)


_BY_TEXT: Final = {ROWS[key]: key for key in FIXED}
