"""Passive replies: the XML WeChat expects back in the HTTP response."""
from __future__ import annotations

from wechatpy.replies import TextReply

SUCCESS = "success"  # WeChat's word for "received, no reply"


def text_xml(*, to: str, account: str, content: str, now: int) -> str:
    return TextReply(target=to, source=account, content=content, time=now).render()


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))
