"""Masking of personal data for logs, exports and screens (reveal is a deliberate choice), and
of secrets (AppSecret, access_token) in every log line."""
from __future__ import annotations

import logging
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


# --- secrets in log lines -------------------------------------------------------------------

_SECRET_NAMES = r"(?:app_?secret|secret|access_token|refresh_token|component_access_token)"
_SECRET_IN_URL = re.compile(rf"(?i)(\b{_SECRET_NAMES}=)[^&\s\"'#]+")
_SECRET_IN_JSON = re.compile(rf"(?i)([\"']{_SECRET_NAMES}[\"']\s*:\s*[\"'])[^\"']+")
REDACTED = "***"


def redact_secrets(text: str) -> str:
    """'…/token?appid=wx1&secret=abc' -> '…/token?appid=wx1&secret=***' (URLs and JSON)."""
    text = _SECRET_IN_URL.sub(rf"\g<1>{REDACTED}", text)
    return _SECRET_IN_JSON.sub(rf"\g<1>{REDACTED}", text)


def _redact_or_none(text: str | None) -> str | None:
    return redact_secrets(text) if text else text


class _RedactedLogRecord(logging.LogRecord):
    """A log record whose message and traceback text never carry the AppSecret or a token,
    whichever logger made it (urllib3 logs full URLs at DEBUG) and whichever handler writes it."""

    def getMessage(self) -> str:
        return redact_secrets(super().getMessage())

    def _text(self, name: str) -> str | None:
        # set through the property, or straight into __dict__ by logging.makeLogRecord
        return _redact_or_none(self.__dict__.get("_" + name) or self.__dict__.get(name))

    exc_text = property(lambda self: self._text("exc_text"),
                        lambda self, value: self.__dict__.__setitem__("_exc_text", value))
    stack_info = property(lambda self: self._text("stack_info"),
                          lambda self, value: self.__dict__.__setitem__("_stack_info", value))


def install_log_redaction() -> None:
    """Make every log record of this process redact secrets, at every level. A logging.Filter
    would only see the records of the one logger or handler it is attached to; the record
    factory sees them all. Idempotent."""
    if logging.getLogRecordFactory() is not _RedactedLogRecord:
        logging.setLogRecordFactory(_RedactedLogRecord)


_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


def mask_phones_in(text: str | None) -> str:
    """Free text (a member's message) with every mobile number in it masked."""
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text or "")
