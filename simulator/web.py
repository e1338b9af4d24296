"""/simulator: a WeChat-like chat page for trying the bot without an account (development).

It speaks only as test members (`sim-…` / `test-…`), never as a real one, and answers loopback
clients only, unless BOT_SIMULATOR=1 opens it on purpose.
"""
from __future__ import annotations

import ipaddress
import re

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from simulator.client import WeChatClient
from storage import deliveries

bp = Blueprint("simulator", __name__, template_folder="templates")
OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
TEST_OPENID = re.compile(r"^(sim|test)-[A-Za-z0-9_-]{1,60}$")
NOT_A_TEST_MEMBER = "这里只能用测试身份（openid 以 sim- 或 test- 开头），不能冒充真实成员"
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
MAX_TEXT = 600


def is_local_client() -> bool:
    """A loopback peer that is not a reverse proxy passing on someone else's request."""
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in PROXY_HEADERS)


def post_as_member(openid: str, text: str | None = None, event: str | None = None,
                   key: str | None = None) -> dict:
    """Send through the real /wechat view of this app, signed with the app's token."""
    rt = current_app.extensions["chengcheng"]
    client = WeChatClient(rt.token, app=current_app._get_current_object(),
                          aes_key=rt.settings.wechat_aes_key or None,
                          appid=rt.settings.wechat_appid)
    result = client.event(openid, event, key) if event else client.text(openid, text or "")
    return {"status": result.status, "reply": result.text}


def pushed_since(openid: str, after: int) -> list[dict]:
    rt = current_app.extensions["chengcheng"]
    rows = [r for r in deliveries.for_member(rt.db(), openid, limit=50)
            if r["status"] == "sent" and r["id"] > after]
    return [{"id": r["id"], "text": r["text"], "title": r["title"], "channel": r["channel"]}
            for r in sorted(rows, key=lambda r: r["id"])]


def validate(payload: dict) -> tuple[str, str | None, str | None, str | None]:
    openid = str(payload.get("openid", ""))
    if not OPENID_RE.match(openid):
        raise ValueError("openid 只能包含字母、数字、- 和 _，6–64 位")
    text = payload.get("text")
    event = payload.get("event")
    if event not in (None, "subscribe", "unsubscribe", "click"):
        raise ValueError("不支持的事件")
    if event is None and (not isinstance(text, str) or not text.strip()):
        raise ValueError("请输入内容")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise ValueError(f"消息过长（最多 {MAX_TEXT} 字）")
    return openid, text, event, payload.get("key")


@bp.before_request
def local_only():
    if not current_app.extensions["chengcheng"].settings.simulator_public and not is_local_client():
        abort(404)


@bp.get("/simulator")
def page():
    rt = current_app.extensions["chengcheng"]
    return render_template("simulator/chat.html", menu=rt.menu, send_url="/simulator/send",
                           inbox_url="/simulator/inbox", csrf="")


@bp.post("/simulator/send")
def send():
    try:
        openid, text, event, key = validate(request.get_json(silent=True) or {})
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    if not TEST_OPENID.match(openid):
        return jsonify(error=NOT_A_TEST_MEMBER), 400
    return jsonify(post_as_member(openid, text, event, key))


@bp.get("/simulator/inbox")
def inbox():
    openid = request.args.get("openid", "")
    if not TEST_OPENID.match(openid):
        return jsonify(error=NOT_A_TEST_MEMBER), 400
    return jsonify(messages=pushed_since(openid, request.args.get("after", 0, type=int)))
