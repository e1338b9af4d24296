"""Masking of personal data for logs, exports and screens (reveal is a deliberate choice)."""
from __future__ import annotations

import re


def mask_phone(phone: str | None) -> str:
    """'13812345678' -> '138****5678'."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_openid(openid: str | None) -> str:
    """Enough to tell members apart in a log line, not enough to message them."""
    if not openid:
        return ""
    return openid[:4] + "…" + openid[-4:] if len(openid) > 10 else openid[:2] + "…"


_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


def mask_phones_in(text: str | None) -> str:
    """Free text (a member's message) with every mobile number in it masked."""
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text or "")
