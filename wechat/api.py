"""WeChat's server API (push messages, menu, users), at WECHAT_API_BASE + the official path.

The access_token is cached in the database and shared by every process; one process at a
time refreshes it, under a lease, because WeChat caps fetches per day and a new token
(from /cgi-bin/token) invalidates the old one.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import quote

import requests
from sqlite_utils import Database

from clock import from_db, to_db
from privacy import install_log_redaction
from settings import Settings
from storage import kv, leases

log = logging.getLogger(__name__)

TOKEN_KEY = "wechat_access_token"
TOKEN_LEASE = "wechat-token-refresh"
TOKEN_EARLY = timedelta(minutes=5)  # refresh this long before WeChat's expiry
TOKEN_WAIT_SECONDS = 15
TOKEN_MEMO_SECONDS = 10  # a client re-reads the shared token this often (a send, not a query)
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid, invalid, expired access_token
TRANSIENT_ERRORS = {-1, 45009, 45011}  # system busy; daily / per-minute quota
PERMANENT_ERRORS = {
    43004: "成员已取消关注",
    40003: "无效的 openid",
    40037: "无效的模板 id",
    43101: "成员未订阅该通知",
    45015: "超出 48 小时客服消息窗口",
    45047: "超出客服消息条数限制",
    47003: "模板字段不符合微信限制",
    48001: "公众号没有该接口权限（未认证）",
}


class WeChatAPIError(Exception):
    """WeChat answered with an errcode, a non-200 status, or not at all."""

    def __init__(self, errcode: int | None, errmsg: str, *, http_status: int | None = None):
        super().__init__(f"{errcode if errcode is not None else http_status}: {errmsg}")
        self.errcode, self.errmsg, self.http_status = errcode, errmsg, http_status

    @property
    def transient(self) -> bool:
        """Worth retrying later: busy, quota, 5xx, timeouts, a garbled answer, a token
        that went stale again between refresh and retry."""
        if self.errcode is None:
            return self.http_status is None or self.http_status in (200, 429) \
                or self.http_status >= 500
        return self.errcode in TRANSIENT_ERRORS or self.errcode in TOKEN_ERRORS

    @property
    def token_problem(self) -> bool:
        return self.errcode in TOKEN_ERRORS

    @property
    def reason(self) -> str:
        if self.errcode in PERMANENT_ERRORS:
            return f"{self.errcode} {PERMANENT_ERRORS[self.errcode]}"
        return str(self)


class WeChatAPI:
    """A small client for the calls the bot makes; safe to share between threads."""

    def __init__(self, settings: Settings, db: Callable[[], Database],
                 now: Callable[[], datetime]):
        self.settings, self._db, self._now = settings, db, now
        install_log_redaction()  # urllib3 logs URLs (token, secret) at DEBUG
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._local = threading.local()
        self._memo: tuple[str, datetime, float] | None = None  # token, expires_at, read at
        self.calls = 0  # outbound calls, for benchmarks
        self.token_fetches = 0

    # --- transport -----------------------------------------------------------------------
    def _session(self) -> requests.Session:
        """This thread's session: its pool keeps the connection to WeChat open between calls.

        The environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) is read once here, not
        by requests on every call, where scanning os.environ cost more than the call."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
            self._local.proxies = {}
        return session

    def _proxies(self, url: str) -> dict:
        """The environment's proxies for `url`'s host (NO_PROXY honoured), once per host."""
        host = url.split("/", 3)[2] if "//" in url else url
        known = self._local.proxies
        if host not in known:
            known[host] = requests.utils.get_environ_proxies(url)
        return known[host]

    def _request(self, method: str, path: str, *, params: dict | None = None,
                 body: dict | None = None) -> dict:
        url = self.settings.wechat_api_base + path
        self.calls += 1
        try:
            resp = self._session().request(
                method, url, params=params, proxies=self._proxies(url),
                data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.settings.wechat_api_timeout)
        except requests.RequestException as exc:
            raise WeChatAPIError(None, f"network: {exc.__class__.__name__}") from exc
        if resp.status_code != 200:
            raise WeChatAPIError(None, f"HTTP {resp.status_code}", http_status=resp.status_code)
        try:
            data = resp.json()
        except ValueError as exc:
            raise WeChatAPIError(None, "response is not JSON", http_status=200) from exc
        if data.get("errcode", 0) != 0:
            raise WeChatAPIError(int(data["errcode"]), str(data.get("errmsg", "")))
        return data

    # --- access token --------------------------------------------------------------------
    def access_token(self, *, rejected: str | None = None) -> str:
        """A valid token from the shared cache, fetched only when missing, expired or rejected.

        One process at a time fetches (a lease row); the others wait for its token. `rejected`
        is a token WeChat just refused (40001/42001): it is never handed out again.
        Raises WeChatAPIError when no token can be had.
        """
        memo = self._memo
        if (memo and rejected is None and memo[1] > self._now()
                and time.monotonic() - memo[2] < TOKEN_MEMO_SECONDS):
            return memo[0]
        cached = self._cached(rejected)
        if cached and cached != rejected:
            return cached
        deadline = time.monotonic() + TOKEN_WAIT_SECONDS
        owner = f"{self._owner}-{threading.get_ident()}"  # threads of one client compete too
        while True:
            db = self._db()
            if leases.acquire(db, TOKEN_LEASE, owner, timedelta(seconds=30), self._now()):
                try:
                    cached = self._cached(rejected)
                    if cached and cached != rejected:
                        return cached  # another process refreshed it meanwhile
                    return self._fetch(rejected)
                finally:
                    leases.release(db, TOKEN_LEASE, owner)
            time.sleep(0.05)  # someone else is refreshing: wait for their token
            cached = self._cached(rejected)
            if cached and cached != rejected:
                return cached
            if time.monotonic() > deadline:
                raise WeChatAPIError(None, "timed out waiting for the token refresh")

    def _cached(self, rejected: str | None = None) -> str | None:
        """The shared token from the database, if still valid; kept in memory for
        TOKEN_MEMO_SECONDS (a token another process replaced meanwhile is answered 40001,
        and `call` then reads the new one)."""
        raw = kv.get(self._db(), TOKEN_KEY)
        if not raw:
            return None
        value = json.loads(raw)
        expires = from_db(value["expires_at"])
        if expires <= self._now():
            return None
        if value["token"] != rejected:
            self._memo = (value["token"], expires, time.monotonic())
        return value["token"]

    def _fetch(self, rejected: str | None) -> str:
        """Ask WeChat for a token. The stable API is asked normally first (it returns the
        current token while valid, without invalidating anyone's), and forced only when that
        is the very token just rejected: forced refreshes are few per day."""
        s = self.settings
        if not (s.wechat_appid and s.wechat_secret):
            raise WeChatAPIError(None, "WECHAT_APPID/WECHAT_SECRET 未配置，无法调用微信接口")
        if s.wechat_stable_token:
            data = self._stable(force=False)
            if rejected is not None and data["access_token"] == rejected:
                data = self._stable(force=True)
        else:
            data = self._request("GET", "/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": s.wechat_appid,
                "secret": s.wechat_secret})
        lifetime = timedelta(seconds=int(data.get("expires_in", 7200)))
        expires = self._now() + lifetime - min(TOKEN_EARLY, lifetime / 2)
        kv.put(self._db(), TOKEN_KEY, json.dumps({"token": data["access_token"],
                                                  "expires_at": to_db(expires)}), self._now())
        self._memo = (data["access_token"], expires, time.monotonic())
        self.token_fetches += 1
        log.info("fetched an access_token (stable=%s, after rejection=%s)",
                 s.wechat_stable_token, rejected is not None)
        return data["access_token"]

    def _stable(self, *, force: bool) -> dict:
        s = self.settings
        return self._request("POST", "/cgi-bin/stable_token", body={
            "grant_type": "client_credential", "appid": s.wechat_appid,
            "secret": s.wechat_secret, "force_refresh": force})

    def call(self, method: str, path: str, body: dict | None = None,
             params: dict | None = None) -> dict:
        """An API call with the token; on an invalid/expired token, refresh once and retry."""
        token = self.access_token()
        try:
            return self._request(method, path, params={**(params or {}), "access_token": token},
                                 body=body)
        except WeChatAPIError as exc:
            if not exc.token_problem:
                raise
            token = self.access_token(rejected=token)
            return self._request(method, path, params={**(params or {}), "access_token": token},
                                 body=body)

    # --- the calls the bot makes ---------------------------------------------------------
    def send_custom_text(self, openid: str, text: str) -> dict:
        return self.call("POST", "/cgi-bin/message/custom/send",
                         {"touser": openid, "msgtype": "text", "text": {"content": text}})

    def send_template(self, openid: str, template_id: str, data: dict,
                      url: str | None = None, client_msg_id: str | None = None) -> dict:
        """A template message; WeChat sends one message per (openid, client_msg_id), so a
        retry after a lost answer is dropped by WeChat itself. The answer carries msgid."""
        body = {"touser": openid, "template_id": template_id,
                "data": {k: {"value": v} for k, v in data.items()}}
        if url:
            body["url"] = url
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        return self.call("POST", "/cgi-bin/message/template/send", body)

    def send_subscribe(self, openid: str, template_id: str, data: dict) -> dict:
        return self.call("POST", "/cgi-bin/message/subscribe/bizsend",
                         {"touser": openid, "template_id": template_id,
                          "data": {k: {"value": v} for k, v in data.items()}})

    def create_qrcode(self, scene_str: str, expire_seconds: int) -> dict:
        """A temporary parametric QR code (QR_STR_SCENE): {ticket, expire_seconds, url}.
        Unverified accounts get 48001 (api unauthorized)."""
        return self.call("POST", "/cgi-bin/qrcode/create", {
            "expire_seconds": int(expire_seconds), "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}}})

    def qrcode_image_url(self, ticket: str) -> str:
        """Where WeChat shows the QR image for a ticket (no access_token needed)."""
        return f"{self.settings.qr_base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}"

    def qrcode_image(self, ticket: str) -> tuple[bytes, str]:
        """The QR image from showqrcode: (bytes, content type). Raises WeChatAPIError."""
        try:
            url = self.qrcode_image_url(ticket)
            resp = self._session().get(url, proxies=self._proxies(url),
                                       timeout=self.settings.wechat_api_timeout)
        except requests.RequestException as exc:
            raise WeChatAPIError(None, f"network: {exc.__class__.__name__}") from exc
        ctype = resp.headers.get("Content-Type", "")
        if resp.status_code != 200 or not ctype.startswith("image/"):
            raise WeChatAPIError(None, f"showqrcode HTTP {resp.status_code}",
                                 http_status=resp.status_code)
        return resp.content, ctype

    def create_menu(self, menu: dict) -> dict:
        return self.call("POST", "/cgi-bin/menu/create", menu)
