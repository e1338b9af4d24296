"""/simulator: a WeChat-like chat page for trying the bot without an account (development)."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify, render_template, request

from simulator.client import WeChatClient
from storage import deliveries

bp = Blueprint("simulator", __name__, template_folder="templates")
OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
MAX_TEXT = 600


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
    return jsonify(post_as_member(openid, text, event, key))


@bp.get("/simulator/inbox")
def inbox():
    openid = request.args.get("openid", "")
    if not OPENID_RE.match(openid):
        return jsonify(error="bad openid"), 400
    return jsonify(messages=pushed_since(openid, request.args.get("after", 0, type=int)))
