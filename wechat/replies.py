"""Passive replies: the XML WeChat expects back in the HTTP response."""
from __future__ import annotations

import re

SUCCESS = "success"  # WeChat's word for "received, no reply"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 forbids


def cdata(value: str) -> str:
    """A CDATA section that holds any text, `]]>` included (split across two sections)."""
    return "<![CDATA[" + _NOT_XML.sub("", value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(*, to: str, account: str, content: str, now: int) -> str:
    return (f"<xml><ToUserName>{cdata(to)}</ToUserName><FromUserName>{cdata(account)}"
            f"</FromUserName><CreateTime>{int(now)}</CreateTime><MsgType><![CDATA[text]]>"
            f"</MsgType><Content>{cdata(content)}</Content></xml>")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))
