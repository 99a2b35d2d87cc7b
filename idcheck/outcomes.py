"""What each answer of the identity service means for the call (a table, not code paths).

The service answers with the words of the citizen identity database; each maps to one
Outcome, and each Outcome to what the teller sees, what the customer screen says and whether
the identity step passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    MATCH = "match"
    NAME_MISMATCH = "name_mismatch"
    NOT_FOUND = "not_found"
    DECEASED = "deceased"


#: the service's `result` words -> Outcome
RESULTS: dict[str, Outcome] = {
    "一致": Outcome.MATCH,
    "不一致": Outcome.NAME_MISMATCH,
    "库中无此号": Outcome.NOT_FOUND,
    "已死亡": Outcome.DECEASED,
}


@dataclass(frozen=True)
class StepText:
    teller_text: str
    customer_text: str
    passes: bool


OUTCOMES: dict[Outcome, StepText] = {
    Outcome.MATCH: StepText("联网核查一致：姓名与身份证号码相符", "身份核查通过", passes=True),
    Outcome.NAME_MISMATCH: StepText(
        "联网核查不一致：姓名与号码不符，请核对证件，不得继续办理",
        "身份信息核对未通过，请联系工作人员",
        passes=False,
    ),
    Outcome.NOT_FOUND: StepText(
        "联网核查：库中无此号，疑似伪造或非居民身份证，不得继续办理",
        "身份信息核对未通过，请联系工作人员",
        passes=False,
    ),
    Outcome.DECEASED: StepText(
        "联网核查：证件持有人已登记死亡，立即终止并上报",
        "身份信息核对未通过，请联系工作人员",
        passes=False,
    ),
}

#: said when the service is down (IdentityServiceDown): the step neither passes nor fails
SERVICE_DOWN = StepText(
    "联网核查服务暂不可用，可稍后重试或转网点柜台办理",
    "身份核查服务暂时不可用，请稍后再试",
    passes=False,
)
