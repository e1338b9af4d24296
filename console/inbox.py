"""人工回复: members who asked for a person, longest wait first; read, reply, close.

A reply is a customer-service message through the outbox, so WeChat's rules decide what the
page offers: within the 48-hour window and under its cap the reply box, otherwise the notice
template (when configured). URLs carry the conversation's number, never the openid.
"""
from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from clock import from_db
from console.auth import actor, db, login_required, now, runtime, scope
from privacy import mask_openid, mask_phone, mask_phones_in
from scheduler import handoff as service
from storage import handoff as store

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
HISTORY = 30
CLOSED_SHOWN = 10
STATUS_WORDS = {"pending": "待发送", "sending": "发送中", "sent": "已送达", "failed": "失败",
                "unreachable": "无法送达", "dropped": "已过时", "cancelled": "已取消"}
CLOSE_WORDS = {"member": "成员结束", "staff": "工作人员结束", store.TIMEOUT_REASON: "超时自动结束"}


def _row(row: dict, moment) -> dict:
    waiting = from_db(row["waiting_since"])
    return {**row, "waited": service.waited(waiting, moment) if waiting else "",
            "last_text": mask_phones_in(row.get("last_text")),
            "who": row["name"] or "未登记姓名", "openid_masked": mask_openid(row["openid"])}


def _conversation_or_404(handoff_id: int) -> dict:
    row = store.get(db(), handoff_id)
    if row is None or not scope().has_unit(row["unit"]):
        abort(404)
    return row


def waiting(database) -> tuple[int, str | None]:
    """(conversations waiting for a person, the oldest wait) within the account's scope."""
    if not scope().limited:
        return store.waiting(database)
    stamps = [r["waiting_since"] for r in scope().members(store.list_open(database))
              if r["waiting_since"]]
    return len(stamps), min(stamps, default=None)


@bp.get("/")
@login_required
def index():
    rt, database, moment = runtime(), db(), now()
    service.expire(rt)
    rows = [_row(r, moment) for r in scope().members(store.list_open(database))]
    count, oldest = waiting(database)
    return render_template("console/inbox.html", rows=rows, waiting=count,
                           oldest=service.waited(from_db(oldest), moment) if oldest else "",
                           closed=[_row(r, moment) for r in
                                   scope().members(store.recently_closed(database,
                                                                         CLOSED_SHOWN))],
                           close_words=CLOSE_WORDS)


@bp.get("/<int:handoff_id>")
@login_required
def thread(handoff_id: int):
    rt, moment = runtime(), now()
    service.expire(rt)
    row = _row(_conversation_or_404(handoff_id), moment)
    allowed = service.allowance(rt, row["openid"])
    return render_template(
        "console/inbox_thread.html", c=row, phone=mask_phone(row["phone"]),
        history=[{**m, "text": mask_phones_in(m["text"])}
                 for m in store.history(db(), row["openid"], HISTORY)], allowed=allowed,
        window_hours=rt.settings.wechat_cs_window_hours, cap=rt.settings.wechat_cs_max_messages,
        nonce=secrets.token_hex(8), status_words=STATUS_WORDS, close_words=CLOSE_WORDS)


@bp.post("/<int:handoff_id>/reply")
@login_required
def reply(handoff_id: int):
    row = _conversation_or_404(handoff_id)
    template = request.form.get("channel") == "template"
    nonce = (request.form.get("nonce") or "")[:32] or None
    try:
        delivery = service.reply(runtime(), row, request.form.get("text", ""), actor(),
                                 template=template, nonce=nonce)
    except service.HandoffError as exc:
        flash(f"没有发送：{exc}", "bad")
        return redirect(url_for(".thread", handoff_id=handoff_id))
    if delivery is None:
        flash("这条回复已经发过了。", "warn")
    else:
        flash("已发送：" + ("通知模板" if template else "客服消息") + "已加入发件箱，几秒内送达。", "ok")
    return redirect(url_for(".thread", handoff_id=handoff_id))


@bp.post("/<int:handoff_id>/close")
@login_required
def close(handoff_id: int):
    row = _conversation_or_404(handoff_id)
    if service.close(runtime(), row, actor()):
        flash("已结束对话；这位成员再问机器人答不了的问题时，会照常收到“没有找到”。", "ok")
    else:
        flash("这个对话已经结束了。", "warn")
    return redirect(url_for(".index"))
