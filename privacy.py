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


class _RedactedLogRecord(logging.LogRecord):
    """A log record whose message and traceback text never carry the AppSecret or a token,
    whichever logger made it (urllib3 logs full URLs at DEBUG) and whichever handler writes it."""

    def getMessage(self) -> str:
        return redact_secrets(super().getMessage())

    @property
    def exc_text(self) -> str | None:
        return self.__dict__.get("_exc_text")

    @exc_text.setter
    def exc_text(self, value: str | None) -> None:
        self.__dict__["_exc_text"] = redact_secrets(value) if value else value

    @property
    def stack_info(self) -> str | None:
        return self.__dict__.get("_stack_info")

    @stack_info.setter
    def stack_info(self, value: str | None) -> None:
        self.__dict__["_stack_info"] = redact_secrets(value) if value else value


def install_log_redaction() -> None:
    """Make every log record of this process redact secrets, at every level. A logging.Filter
    would only see the records of the one logger or handler it is attached to; the record
    factory sees them all. Idempotent."""
    if logging.getLogRecordFactory() is not _RedactedLogRecord:
        logging.setLogRecordFactory(_RedactedLogRecord)
