"""A WeChat-server stand-in: builds message XML, signs it, posts it, reads the reply.

Used by `bot.py chat`, the /simulator page, the console simulator, tests and benchmarks.
It posts either over HTTP to a running server (url=...) or into a Flask app in-process.
"""
from __future__ import annotations

import itertools
import random
import secrets
import time
from dataclasses import dataclass

import xmltodict

from wechat import crypto

ACCOUNT = "gh_chengcheng_sim"
_ids = itertools.count(int(time.time() * 1000) % 10**12 * 1000 + random.randint(0, 999))


@dataclass
class Result:
    status: int
    body: str
    text: str | None  # the reply's Content; None for 'success' or an error

    @property
    def ok(self) -> bool:
        return self.status == 200


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(openid: str, content: str, *, msg_id: int | None = None,
             create_time: int | None = None, account: str = ACCOUNT) -> str:
    return (f"<xml><ToUserName>{cdata(account)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{cdata(content)}</Content>"
            f"<MsgId>{msg_id or next(_ids)}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str | None = None, *,
              create_time: int | None = None, account: str = ACCOUNT) -> str:
    key_xml = f"<EventKey>{cdata(key)}</EventKey>" if key is not None else ""
    return (f"<xml><ToUserName>{cdata(account)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event>{cdata(event)}</Event>{key_xml}</xml>")


def media_xml(openid: str, msg_type: str, fields: dict[str, str], *,
              msg_id: int | None = None, account: str = ACCOUNT) -> str:
    inner = "".join(f"<{k}>{cdata(v) if isinstance(v, str) else v}</{k}>"
                    for k, v in fields.items())
    return (f"<xml><ToUserName>{cdata(account)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{cdata(msg_type)}</MsgType>{inner}<MsgId>{msg_id or next(_ids)}</MsgId></xml>")


class WeChatClient:
    """Signs and posts like WeChat's servers. Give `url` (a running bot) or `app` (in-process)."""

    def __init__(self, token: str, *, url: str | None = None, app=None,
                 aes_key: str | None = None, appid: str = "", timeout: float = 10):
        if (url is None) == (app is None):
            raise ValueError("give exactly one of url or app")
        self.token, self.url, self.app, self.timeout = token, url, app, timeout
        self.safe = crypto.SafeMode(token, aes_key, appid) if aes_key else None
        self._http = None
        if url is not None:
            import requests

            self._http = requests.Session()

    def signed_query(self, *, timestamp: str | None = None, nonce: str | None = None,
                     encrypted: str | None = None) -> dict:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        query = {"signature": crypto.signature(self.token, timestamp, nonce),
                 "timestamp": timestamp, "nonce": nonce, "openid": "sim"}
        if encrypted is not None:
            query.update(encrypt_type="aes",
                         msg_signature=crypto.signature(self.token, timestamp, nonce, encrypted))
        return query

    def post_xml(self, xml: str) -> Result:
        """Post a message (encrypting it in safe mode) and read the reply."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        body = xml
        encrypted = None
        if self.safe:
            envelope = xmltodict.parse(self.safe.encrypt(xml, nonce, timestamp))["xml"]
            encrypted = envelope["Encrypt"]
            body = (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName>"
                    f"<Encrypt>{cdata(encrypted)}</Encrypt></xml>")
        query = self.signed_query(timestamp=timestamp, nonce=nonce, encrypted=encrypted)
        status, text = self.raw_post(query, body.encode("utf-8"))
        return Result(status, text, self._reply_text(status, text))

    def raw_post(self, query: dict, body: bytes) -> tuple[int, str]:
        if self._http is not None:
            resp = self._http.post(self.url.rstrip("/") + "/wechat", params=query, data=body,
                                   headers={"Content-Type": "text/xml"}, timeout=self.timeout)
            return resp.status_code, resp.text
        resp = self.app.test_client().post("/wechat", query_string=query, data=body,
                                           content_type="text/xml")
        return resp.status_code, resp.get_data(as_text=True)

    def text(self, openid: str, content: str, msg_id: int | None = None) -> Result:
        return self.post_xml(text_xml(openid, content, msg_id=msg_id))

    def event(self, openid: str, event: str, key: str | None = None,
              create_time: int | None = None) -> Result:
        return self.post_xml(event_xml(openid, event, key, create_time=create_time))

    def _reply_text(self, status: int, body: str) -> str | None:
        if status != 200 or not body or body == "success":
            return None
        data = xmltodict.parse(body)["xml"]
        if self.safe and "Encrypt" in data:
            data = xmltodict.parse(self.safe.decrypt(data["Encrypt"]))["xml"]
        return data.get("Content")

