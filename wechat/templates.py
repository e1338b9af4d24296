"""WeChat's limits on template and subscribe-message fields, checked before a row is queued.

WeChat rejects a value over its field type's limit with errcode 47003 ("argument invalid!
data.thing1.value ..."); the type is the key's name without its number (thing1 -> thing).
Old-style keyword fields have the same 20-character limit as thing since 2023. Line breaks are
not refused here: the dispatcher folds white space (WeChat shows none) before sending.
"""
from __future__ import annotations

import re

FIELD = re.compile(r"^(thing|keyword|character_string|phrase|number|letter|name)(\d{1,2})$")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LIMITS = {"thing": 20, "keyword": 20, "character_string": 32, "phrase": 5, "number": 32,
          "letter": 32, "name": 10}
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_LETTER = re.compile(r"^[A-Za-z]+$")
_PHRASE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")
_ASCII = re.compile(r"^[\x21-\x7e ]+$")


class TemplateFieldError(ValueError):
    """A field WeChat would refuse (47003); str(exc) says which and why, in Chinese."""


def problem(key: str, value) -> str | None:
    """Why WeChat would refuse this field's value (None: fine; keys it does not type: None)."""
    m = FIELD.match(key)
    if not m:
        return None
    kind, limit = m.group(1), LIMITS[m.group(1)]
    text = "" if value is None else str(value)
    if not text.strip():
        return f"{key} 不能为空"
    if len(text) > limit:
        return f"{key} 超过 {limit} 个字（{len(text)} 个）"
    if kind == "character_string" and not _ASCII.match(text):
        return f"{key} 只能是字母、数字和符号（不能有汉字）"
    if kind == "phrase" and not _PHRASE.match(text):
        return f"{key} 只能是 5 个以内的汉字"
    if kind == "number" and not _NUMBER.match(text):
        return f"{key} 只能是数字"
    if kind == "letter" and not _LETTER.match(text):
        return f"{key} 只能是字母"
    return None


def check(fields: dict) -> None:
    """Raises TemplateFieldError naming every field WeChat would refuse."""
    problems = [p for p in (problem(k, v) for k, v in (fields or {}).items()) if p]
    if problems:
        raise TemplateFieldError("模板消息字段超出微信限制：" + "；".join(problems))
