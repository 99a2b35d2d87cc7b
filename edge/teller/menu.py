"""The businesses the customer screen offers (few, big buttons): catalogue code and label.

Codes are ``cloud/businesses.toml`` entries; the labels are what an elderly
customer reads on the button. Six at most: more would not fit one screen at this size.
"""

from __future__ import annotations

MENU: tuple[tuple[str, str], ...] = (
    ("pension", "养老金认证"),
    ("social_security_activation", "社保卡激活"),
    ("card_loss", "银行卡挂失"),
    ("password_reset", "密码重置"),
    ("balance_inquiry", "余额查询"),
    ("account_change", "其他业务"),
)

CODES = frozenset(code for code, _ in MENU)
