"""Fake WeChat official-account API server for tests and local use.

A real HTTP server on loopback (stdlib ThreadingHTTPServer in a daemon thread) that
answers WeChat's official paths the way WeChat does: JSON over UTF-8, HTTP 200 with
``errcode``/``errmsg`` even for errors. Point the bot's base URL at ``api.url``.

Token rules (our reading of WeChat's behaviour):
- ``/cgi-bin/token`` issues a new token on every fetch and supersedes all older ones.
- ``/cgi-bin/stable_token`` returns the current token while valid; ``force_refresh``
  or an expired/missing token issues a new one (same single token slot as /token).
- Missing, unknown or superseded token -> 40001; a token past issued_at + ttl (server
  clock) or hit by ``expire_tokens()`` -> 42001. A superseded token gets 40001 even if
  it has also expired, since WeChat treats it as simply invalid.

Deliberate simplifications: missing access_token gives 40001 (WeChat says 41001), an
unsubscribed user gets 43004 on every send kind, and errmsg has no " rid: ..." suffix.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeWeChatAPI", "ERRMSG", "main"]

ERRMSG = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40037: "invalid template_id",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43004: "require subscribe hint",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    46003: "menu no exist",
    47001: "data format error",
    40097: "invalid args",
    47003: "argument invalid!",
    48001: "api unauthorized",
}

OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
# WeChat's field types for template/subscribe data, by key name without its number:
# (max characters, allowed pattern or None). Over the limit -> 47003.
FIELD_TYPES = {"thing": (20, None), "keyword": (20, None),
               "character_string": (32, re.compile(r"^[\x21-\x7e ]*$")),
               "phrase": (5, re.compile(r"^[\u4e00-\u9fff]*$"))}
FIELD_KEY = re.compile(r"^([a-z_]+?)(\d+)$")
CLIENT_MSG_TTL = 600  # seconds WeChat remembers a client_msg_id
USER_PAGE_SIZE = 10000
_BAD_BODY = object()  # sentinel: body present but not a JSON object


def _err(code: int) -> dict:
    return {"errcode": code, "errmsg": ERRMSG.get(code, "unknown error")}


def _ok(**extra) -> dict:
    return {"errcode": 0, "errmsg": "ok", **extra}


def _norm_path(path: str) -> str:
    return path if path == "*" or path.startswith("/") else "/" + path


QR_MAX_EXPIRE = 2592000  # 30 days, WeChat's limit for temporary QR codes
QR_DEFAULT_EXPIRE = 60
QR_ACTIONS = ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE")


class _Reply:
    """What the dispatcher decided: status, body object (dict, str for raw text, or bytes
    with their content type)."""

    def __init__(self, body, status: int = 200, ctype: str | None = None):
        self.body = body
        self.status = status
        self.ctype = ctype


class FakeWeChatAPI:
    """In-process fake of api.weixin.qq.com; all mutable state is guarded by ``self._lock``."""

    def __init__(self, appid: str = "wxfakeappid", secret: str = "fakesecret",
                 host: str = "127.0.0.1", port: int = 0, token_ttl: float = 7200,
                 verbose: bool = False):
        self.appid = appid
        self.secret = secret
        self.host = host
        self.port = port
        self.token_ttl = token_ttl
        self.verbose = verbose
        self.user_page_size = USER_PAGE_SIZE
        self.url: str | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # token -> {"issued_at", "expires_at", "superseded"}; times are time.monotonic()
        self._tokens: dict[str, dict] = {}
        self._current_token: str | None = None
        self.token_fetches = 0
        self._calls: list[dict] = []
        self._inbox: list[dict] = []
        self._faults: list[dict] = []
        self._random_faults: list[dict] = []
        self._menu: dict | None = None
        self._msgid = 1000000000
        self._client_msgs: dict[tuple[str, str], tuple[float, int]] = {}
        self._subscribers: list[str] = []
        self.unsubscribed: set[str] = set()
        self._qr: dict[str, dict] = {}  # ticket -> scene, url, expires_at (monotonic)
        self.qr_unauthorized = False  # an unverified account: qrcode/create answers 48001

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> "FakeWeChatAPI":
        """Bind and serve in a daemon thread; ``port=0`` picks a free port."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.api = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-wechat-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests and close the socket; in-flight delayed replies are abandoned."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeWeChatAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inspection ------------------------------------------------------------------

    @property
    def calls(self) -> list[dict]:
        """Snapshot of recorded WeChat-path calls (``/_fake/`` hooks are not recorded)."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def calls_to(self, path: str) -> list[dict]:
        path = _norm_path(path)
        return [c for c in self.calls if c["path"] == path]

    def inbox(self, openid: str | None = None) -> list[dict]:
        """Delivered messages in order, optionally for one openid."""
        with self._lock:
            return [dict(m) for m in self._inbox if openid is None or m["openid"] == openid]

    @property
    def subscribers(self) -> list[str]:
        """Ordered follower list paged by user/get; assign any iterable to replace it."""
        return self._subscribers

    @subscribers.setter
    def subscribers(self, openids) -> None:
        with self._lock:
            self._subscribers = list(openids)

    @property
    def qr_codes(self) -> list[dict]:
        """QR codes made so far: ticket, action, scene, url, expire_seconds."""
        with self._lock:
            return [{"ticket": t, **{k: v for k, v in info.items() if k != "expires_at"}}
                    for t, info in self._qr.items()]

    @property
    def current_token(self) -> str | None:
        with self._lock:
            return self._current_token

    @property
    def menu(self) -> dict | None:
        with self._lock:
            return self._menu

    # ---- control ---------------------------------------------------------------------

    def inject(self, path: str, errcode: int | None = None, http_status: int | None = None,
               delay: float | None = None, times: int = 1, openid: str | None = None) -> None:
        """Queue a fault for the next ``times`` matching calls to ``path`` ("*" = any path)."""
        if errcode is None and http_status is None and delay is None:
            raise ValueError("inject needs errcode, http_status or delay")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append({"path": _norm_path(path), "errcode": errcode,
                                 "http_status": http_status, "delay": delay,
                                 "remaining": int(times), "openid": openid})

    def inject_random(self, path: str, fraction: float, errcodes=(-1, 45009),
                      http_statuses=(500,), seed: int = 0) -> None:
        """Fail ``fraction`` of calls to ``path`` at random; same seed and call order, same failures."""
        pool = [("errcode", c) for c in errcodes] + [("http_status", s) for s in http_statuses]
        if not pool:
            raise ValueError("inject_random needs at least one errcode or http_status")
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be within [0, 1]")
        with self._lock:
            self._random_faults.append({"path": _norm_path(path), "fraction": fraction,
                                        "pool": pool, "rng": random.Random(seed)})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random_faults.clear()

    def expire_tokens(self) -> None:
        """Make every issued token expired now, so its next use gets 42001."""
        now = time.monotonic()
        with self._lock:
            for info in self._tokens.values():
                info["expires_at"] = min(info["expires_at"], now)

    def reset(self) -> None:
        """Clear calls, inbox and faults; tokens, menu and subscribers stay."""
        with self._lock:
            self._calls.clear()
            self._inbox.clear()
            self._faults.clear()
            self._random_faults.clear()

    # ---- request handling (called from handler threads) ------------------------------

    def _take_fault(self, path: str, openid: str | None) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["path"] in (path, "*") and fault["openid"] in (None, openid):
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self._faults.remove(fault)
                    return fault
            for rf in self._random_faults:
                if rf["path"] in (path, "*"):
                    rng = rf["rng"]
                    if rng.random() < rf["fraction"]:
                        kind, value = rng.choice(rf["pool"])
                        return {kind: value}
        return None

    def _handle(self, method: str, path: str, query: dict, body) -> _Reply:
        """Apply any fault, then dispatch; returns the reply and records the call."""
        started = time.time()
        is_hook = path.startswith("/_fake/")
        reply = None
        if not is_hook:
            openid = query.get("openid")
            if isinstance(body, dict) and isinstance(body.get("touser"), str):
                openid = body["touser"]
            fault = self._take_fault(path, openid)
            if fault:
                if fault.get("delay"):
                    time.sleep(fault["delay"])
                if fault.get("http_status"):
                    status = int(fault["http_status"])
                    try:
                        phrase = HTTPStatus(status).phrase
                    except ValueError:
                        phrase = "Error"
                    reply = _Reply(f"{status} {phrase}", status)
                elif fault.get("errcode") is not None:
                    reply = _Reply(_err(int(fault["errcode"])))
        if reply is None:
            route = _HOOKS.get(path) if is_hook else _ROUTES.get(path)
            if route is None:
                reply = _Reply({"errcode": -1, "errmsg": f"system error: no such path {path}"}, 404)
            else:
                reply = route(self, method, query, body)
                if not isinstance(reply, _Reply):
                    reply = _Reply(reply)
        if not is_hook:
            with self._lock:
                self._calls.append({"method": method, "path": path, "query": query,
                                    "json": body if body is not _BAD_BODY else None,
                                    "status": reply.status,
                                    "response": reply.body if not isinstance(reply.body, bytes)
                                    else f"<{len(reply.body)} bytes {reply.ctype}>",
                                    "time": started})
        return reply

    # ---- tokens ----------------------------------------------------------------------

    def _check_app(self, grant_type, appid, secret) -> dict | None:
        if grant_type != "client_credential":
            return _err(40002)
        if not appid:
            return _err(41002)
        if appid != self.appid:
            return _err(40013)
        if not secret:
            return _err(41004)
        if secret != self.secret:
            return _err(40001)
        return None

    def _issue_token(self) -> dict:
        with self._lock:
            for info in self._tokens.values():
                info["superseded"] = True
            token = secrets.token_urlsafe(102)
            now = time.monotonic()
            self._tokens[token] = {"issued_at": now, "expires_at": now + self.token_ttl,
                                   "superseded": False}
            self._current_token = token
            self.token_fetches += 1
            return {"access_token": token, "expires_in": max(1, math.ceil(self.token_ttl))}

    def _token_error(self, query: dict) -> dict | None:
        with self._lock:
            info = self._tokens.get(query.get("access_token") or "")
            if info is None or info["superseded"]:
                return _err(40001)
            if time.monotonic() >= info["expires_at"]:
                return _err(42001)
        return None

    def _r_token(self, method, query, body):
        return self._check_app(query.get("grant_type"), query.get("appid"),
                               query.get("secret")) or self._issue_token()

    def _r_stable_token(self, method, query, body):
        if body is None:
            return _err(44002)
        if not isinstance(body, dict):
            return _err(47001)
        error = self._check_app(body.get("grant_type"), body.get("appid"), body.get("secret"))
        if error:
            return error
        with self._lock:
            token = self._current_token
            info = self._tokens.get(token) if token else None
            remaining = info["expires_at"] - time.monotonic() if info else 0
            if body.get("force_refresh") or remaining <= 0:
                return self._issue_token()
            return {"access_token": token, "expires_in": max(1, int(remaining))}

    # ---- messages --------------------------------------------------------------------

    def _json_checks(self, query, body) -> dict | None:
        """WeChat's order for JSON endpoints: token, then an empty (44002) or non-object (47001) body."""
        error = self._token_error(query)
        if error:
            return error
        if body is None:
            return _err(44002)
        if not isinstance(body, dict):
            return _err(47001)
        return None

    def _send_checks(self, query, body) -> dict | None:
        """Shared order for send endpoints: token, body, openid format."""
        error = self._json_checks(query, body)
        if error:
            return error
        touser = body.get("touser")
        if not isinstance(touser, str) or not OPENID_RE.match(touser):
            return _err(40003)
        return None

    def _deliver(self, openid: str, kind: str, **fields) -> dict:
        with self._lock:
            msg = {"index": len(self._inbox), "openid": openid, "kind": kind,
                   "time": time.time(), **fields}
            self._inbox.append(msg)
            return msg

    @staticmethod
    def _render_data(data: dict) -> str:
        lines = []
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else item
            lines.append(f"{key}: {value}")
        return "\n".join(lines)

    def _r_custom_send(self, method, query, body):
        error = self._send_checks(query, body)
        if error:
            return error
        msgtype = body.get("msgtype")
        payload = body.get(msgtype) if isinstance(msgtype, str) else None
        if not isinstance(payload, dict):
            return _err(40008)
        content = None
        if msgtype == "text":
            content = payload.get("content")
            if not isinstance(content, str) or not content:
                return _err(44004)
        if body["touser"] in self.unsubscribed:
            return _err(43004)
        self._deliver(body["touser"], "custom", msgtype=msgtype, content=content,
                      payload=payload, template_id=None, data=None)
        return _ok()

    def _template_like(self, query, body, kind: str, link_key: str):
        error = self._send_checks(query, body)
        if error:
            return error
        template_id = body.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            return _err(40037)
        data = body.get("data", {})
        if not isinstance(data, dict):
            return _err(47001)
        bad = self._bad_field(data)
        if bad:
            return {"errcode": 47003, "errmsg": f"argument invalid! data.{bad}.value invalid"}
        if body["touser"] in self.unsubscribed:
            return _err(43004)
        client_msg_id = body.get("client_msg_id") if kind == "template" else None
        with self._lock:
            if isinstance(client_msg_id, str) and client_msg_id:
                seen = self._client_msgs.get((body["touser"], client_msg_id))
                if seen and time.monotonic() - seen[0] < CLIENT_MSG_TTL:
                    return seen[1]  # WeChat sends one message per openid + client_msg_id
            self._msgid += 1
            msgid = self._msgid
            if isinstance(client_msg_id, str) and client_msg_id:
                self._client_msgs[(body["touser"], client_msg_id)] = (time.monotonic(), msgid)
        self._deliver(body["touser"], kind, msgtype="template", content=self._render_data(data),
                      template_id=template_id, data=data, msgid=msgid,
                      **{link_key: body.get(link_key)})
        return msgid

    @staticmethod
    def _bad_field(data: dict) -> str | None:
        """The first field whose value breaks its type's limit (WeChat answers 47003)."""
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else item
            m = FIELD_KEY.match(str(key))
            rule = FIELD_TYPES.get(m.group(1)) if m else None
            if rule is None:
                continue
            text = value if isinstance(value, str) else str(value)
            limit, pattern = rule
            if len(text) > limit or (pattern is not None and not pattern.match(text)):
                return key
        return None

    def _r_template_send(self, method, query, body):
        result = self._template_like(query, body, "template", "url")
        return result if isinstance(result, dict) else _ok(msgid=result)

    def _r_subscribe_send(self, method, query, body):
        result = self._template_like(query, body, "subscribe", "page")
        return result if isinstance(result, dict) else _ok()

    # ---- parametric QR codes --------------------------------------------------------

    def _r_qrcode_create(self, method, query, body):
        error = self._json_checks(query, body)
        if error:
            return error
        if self.qr_unauthorized:
            return _err(48001)
        action = body.get("action_name")
        scene = (body.get("action_info") or {}).get("scene") if isinstance(
            body.get("action_info"), dict) else None
        if action not in QR_ACTIONS or not isinstance(scene, dict):
            return _err(40097)
        if action.endswith("STR_SCENE"):
            value = scene.get("scene_str")
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                return _err(40097)
        else:
            value = scene.get("scene_id")
            top = 100000 if action == "QR_LIMIT_SCENE" else 2**32 - 1
            if not isinstance(value, int) or not 1 <= value <= top:
                return _err(40097)
        temporary = not action.startswith("QR_LIMIT")
        expire = body.get("expire_seconds", QR_DEFAULT_EXPIRE)
        if temporary and (not isinstance(expire, int) or expire < 1):
            return _err(40097)
        expire = min(expire, QR_MAX_EXPIRE) if temporary else None
        ticket = "gQ" + secrets.token_urlsafe(60)
        url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
        with self._lock:
            self._qr[ticket] = {"action": action, "scene": value, "url": url,
                                "expire_seconds": expire,
                                "expires_at": time.monotonic() + expire if expire else None}
        reply = {"ticket": ticket, "url": url}
        if expire:
            reply["expire_seconds"] = expire
        return reply

    def _r_showqrcode(self, method, query, body):
        """The QR image for a ticket (no access_token, as on WeChat); unknown or expired: 404."""
        with self._lock:
            info = self._qr.get(query.get("ticket") or "")
        if info is None or (info["expires_at"] and time.monotonic() >= info["expires_at"]):
            return _Reply("404 Not Found", 404)
        import io

        import qrcode

        buffer = io.BytesIO()
        qrcode.make(info["url"], border=2).save(buffer, format="PNG")
        return _Reply(buffer.getvalue(), 200, "image/png")

    # ---- menu ------------------------------------------------------------------------

    def _r_menu_create(self, method, query, body):
        error = self._json_checks(query, body)
        if error:
            return error
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _err(40016)
        with self._lock:
            self._menu = json.loads(json.dumps(body))
        return _ok()

    def _r_menu_get(self, method, query, body):
        error = self._token_error(query)
        if error:
            return error
        with self._lock:
            return {"menu": self._menu} if self._menu is not None else _err(46003)

    def _r_menu_delete(self, method, query, body):
        error = self._token_error(query)
        if error:
            return error
        with self._lock:
            self._menu = None
        return _ok()

    # ---- users -----------------------------------------------------------------------

    def _r_user_get(self, method, query, body):
        """Pages like WeChat: next_openid is the page's last openid; an empty page ends it."""
        error = self._token_error(query)
        if error:
            return error
        with self._lock:
            subs = list(self._subscribers)
            size = self.user_page_size
        after = query.get("next_openid") or ""
        start = 0
        if after:
            try:
                start = subs.index(after) + 1
            except ValueError:
                return _err(40003)
        page = subs[start:start + size]
        reply = {"total": len(subs), "count": len(page), "next_openid": page[-1] if page else ""}
        if page:
            reply["data"] = {"openid": page}
        return reply

    def _r_user_info(self, method, query, body):
        error = self._token_error(query)
        if error:
            return error
        openid = query.get("openid") or ""
        if not OPENID_RE.match(openid):
            return _err(40003)
        if openid in self.unsubscribed:
            return {"subscribe": 0, "openid": openid}
        return {"subscribe": 1, "openid": openid, "language": "zh_CN",
                "subscribe_time": 1700000000, "remark": "", "groupid": 0, "tagid_list": [],
                "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0, "qr_scene_str": ""}

    # ---- /_fake/ hooks (for clients and tests in another process) --------------------

    def _h_inbox(self, method, query, body):
        try:
            since = int(query.get("since") or 0)
        except ValueError:
            return _Reply({"error": "since must be an integer"}, 400)
        openid = query.get("openid") or None
        with self._lock:
            msgs = [dict(m) for m in self._inbox[since:]
                    if openid is None or m["openid"] == openid]
            return {"messages": msgs, "next": len(self._inbox)}

    def _h_calls(self, method, query, body):
        path = query.get("path")
        return {"calls": self.calls_to(path) if path else self.calls}

    def _h_inject(self, method, query, body):
        if not isinstance(body, dict) or not body.get("path"):
            return _Reply({"error": "JSON body with 'path' required"}, 400)
        try:
            if "fraction" in body:
                self.inject_random(body["path"], float(body["fraction"]),
                                   errcodes=tuple(body.get("errcodes", (-1, 45009))),
                                   http_statuses=tuple(body.get("http_statuses", (500,))),
                                   seed=int(body.get("seed", 0)))
            else:
                self.inject(body["path"], errcode=body.get("errcode"),
                            http_status=body.get("http_status"), delay=body.get("delay"),
                            times=int(body.get("times", 1)), openid=body.get("openid"))
        except (TypeError, ValueError) as exc:
            return _Reply({"error": str(exc)}, 400)
        return {"ok": True}

    def _h_reset(self, method, query, body):
        self.reset()
        return {"ok": True}

    def _h_clear_faults(self, method, query, body):
        self.clear_faults()
        return {"ok": True}

    def _h_expire_tokens(self, method, query, body):
        self.expire_tokens()
        return {"ok": True}

    def _h_subscribers(self, method, query, body):
        if method == "GET":
            with self._lock:
                return {"openids": list(self._subscribers), "unsubscribed": sorted(self.unsubscribed)}
        if not isinstance(body, dict) or not isinstance(body.get("openids", []), list):
            return _Reply({"error": "JSON body {\"openids\": [...]} required"}, 400)
        with self._lock:
            if "openids" in body:
                self._subscribers = list(body["openids"])
            if "unsubscribed" in body:
                self.unsubscribed = set(body["unsubscribed"])
        return {"ok": True}


_ROUTES = {
    "/cgi-bin/token": FakeWeChatAPI._r_token,
    "/cgi-bin/stable_token": FakeWeChatAPI._r_stable_token,
    "/cgi-bin/message/custom/send": FakeWeChatAPI._r_custom_send,
    "/cgi-bin/message/template/send": FakeWeChatAPI._r_template_send,
    "/cgi-bin/message/subscribe/bizsend": FakeWeChatAPI._r_subscribe_send,
    "/cgi-bin/menu/create": FakeWeChatAPI._r_menu_create,
    "/cgi-bin/menu/get": FakeWeChatAPI._r_menu_get,
    "/cgi-bin/menu/delete": FakeWeChatAPI._r_menu_delete,
    "/cgi-bin/user/get": FakeWeChatAPI._r_user_get,
    "/cgi-bin/user/info": FakeWeChatAPI._r_user_info,
    "/cgi-bin/qrcode/create": FakeWeChatAPI._r_qrcode_create,
    "/cgi-bin/showqrcode": FakeWeChatAPI._r_showqrcode,
}

_HOOKS = {
    "/_fake/inbox": FakeWeChatAPI._h_inbox,
    "/_fake/calls": FakeWeChatAPI._h_calls,
    "/_fake/inject": FakeWeChatAPI._h_inject,
    "/_fake/reset": FakeWeChatAPI._h_reset,
    "/_fake/clear_faults": FakeWeChatAPI._h_clear_faults,
    "/_fake/expire_tokens": FakeWeChatAPI._h_expire_tokens,
    "/_fake/subscribers": FakeWeChatAPI._h_subscribers,
}


class _Handler(BaseHTTPRequestHandler):
    """Parses the request, hands it to the FakeWeChatAPI, writes JSON (or raw text) back."""

    server_version = "FakeWeChat/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive, as api.weixin.qq.com: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def _serve(self, method: str) -> None:
        api: FakeWeChatAPI = self.server.api  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        body = None  # None = no body; _BAD_BODY = not JSON
        if raw.strip():
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                body = _BAD_BODY
        self._send(api._handle(method, parts.path, query, body))

    def _send(self, reply: _Reply) -> None:
        if isinstance(reply.body, bytes):
            data, ctype = reply.body, reply.ctype or "application/octet-stream"
        elif isinstance(reply.body, str):
            data, ctype = reply.body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(reply.body, ensure_ascii=False).encode("utf-8"), \
                "application/json; encoding=utf-8"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # client gave up (e.g. its timeout fired during an injected delay)

    def log_message(self, format, *args):
        if getattr(self.server, "api", None) is not None and self.server.api.verbose:
            super().log_message(format, *args)


def main(host: str = "127.0.0.1", port: int = 8900, appid: str = "wxfakeappid",
         secret: str = "fakesecret", token_ttl: float = 7200) -> None:
    """Serve forever (Ctrl-C to stop); wired as ``python bot.py fake-wechat``."""
    api = FakeWeChatAPI(appid=appid, secret=secret, host=host, port=port,
                        token_ttl=token_ttl, verbose=True).start()
    print(f"Fake WeChat API listening on {api.url} (appid={appid}, secret={secret})", flush=True)
    try:
        while api._thread is not None and api._thread.is_alive():
            api._thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Fake WeChat official-account API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--appid", default="wxfakeappid")
    parser.add_argument("--secret", default="fakesecret")
    parser.add_argument("--token-ttl", type=float, default=7200)
    args = parser.parse_args()
    main(args.host, args.port, args.appid, args.secret, args.token_ttl)
