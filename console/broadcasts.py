"""群发通知: compose, choose the audience, preview as WeChat shows it, send now or at a time,
and follow delivery. Queuing is scheduler/broadcast.py's `queue` (the same as the CLI's).
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from activities import service as activities
from clock import fmt_local, to_db
from console.auth import db, login_required, now, record, runtime, scope
from scheduler import broadcast
from scheduler.dispatcher import report_words
from storage import deliveries

bp = Blueprint("broadcasts", __name__, url_prefix="/broadcasts")
ROLE = "organiser"  # organisers and admins may broadcast
BATCH_RE = re.compile(r"^b\d{8}-\d{4}-[0-9a-f]{4,8}$")
STATUS_WORDS = {"sent": "已发送", "pending": "待发送", "sending": "发送中", "failed": "失败",
                "unreachable": "无法送达", "dropped": "已过时效", "cancelled": "已取消"}
KIND_WORDS = {"notice": "通知", "reminder": "活动提醒", "calendar": "日历提醒", "reply": "延迟回复"}


def read_form(form) -> dict:
    """The compose form as queue() takes it: text, title, at, and to ('all' | 'group:…' |
    'activity:…')."""
    kind = form.get("audience", "all")
    to = {"group": f"group:{form.get('group', '').strip()}",
          "activity": f"activity:{form.get('activity', '').strip()}"}.get(kind, "all")
    at = form.get("at", "").strip() if form.get("when") == "later" else ""
    return {"text": form.get("text", ""), "title": (form.get("title") or "通知").strip()[:20],
            "to": to, "at": at.replace("T", " ")}


def check_scope(to: str) -> None:
    """A scoped organiser names only a 共同体 or an activity inside the scope (the members
    are filtered by scope in broadcast.audience either way). Raises BroadcastError."""
    from console.activities import in_scope

    limit = scope()
    if not limit.limited:
        return
    kind, _, value = to.partition(":")
    if kind == "group" and not limit.has_group(broadcast.find_group(value)["key"]):
        raise broadcast.BroadcastError(f"你的账号只能群发给{limit.label}范围内的成员")
    if kind == "activity":
        try:
            activity = activities.get_activity(db(), int(value))
        except (ValueError, activities.ActivityNotFound):
            return
        if not in_scope(activity):
            raise broadcast.BroadcastError(f"没有编号为 {value} 的活动")


def _choices() -> dict:
    """What the audience pickers offer: the 共同体 and the activities members signed up for
    (those in the account's scope)."""
    from console.activities import in_scope

    rows = [a for a in activities.list_activities(db(), ("open", "closed"))
            if (a["confirmed"] or 0) + (a["waitlisted"] or 0) > 0 and in_scope(a)]
    return {"groups": [g for g in broadcast.groups() if scope().has_group(g["key"])],
            "activities": rows, "max_text": broadcast.MAX_TEXT,
            "template_on": bool(runtime().settings.wechat_template_notice)}


def _compose(values: dict, preview: dict | None = None, error: str | None = None,
             status: int = 200):
    return render_template("console/broadcasts.html", values=values, preview=preview,
                           error=error, batches=deliveries.batches(db(), limit=10),
                           kinds=deliveries.by_kind(db()), kind_words=KIND_WORDS,
                           **_choices()), status


@bp.get("/")
@login_required(role=ROLE)
def index():
    return _compose({"audience": "all", "when": "now", "title": "通知"})


@bp.post("/preview")
@login_required(role=ROLE)
def preview():
    """Check everything queue() would check, and show the notice as members will see it."""
    values = dict(request.form)
    fields = read_form(request.form)
    rt = runtime()
    try:
        text = broadcast.check_text(fields["text"])
        due = broadcast.due_time(rt, fields["at"] or None)
        check_scope(fields["to"])
        who = broadcast.audience(rt, fields["to"], scope())
    except broadcast.BroadcastError as exc:
        return _compose(values, error=str(exc), status=400)
    shown = {"text": f"【{fields['title']}】{text}", "count": len(who.openids), "label": who.label,
             "when": "立即" if not fields["at"] else fmt_local(due, rt.settings.tz, year=True),
             "keyword1": text[:20], "keyword2": fmt_local(due, rt.settings.tz),
             "batch": broadcast.new_batch(rt)}
    return _compose(values, preview=shown)


@bp.post("/send")
@login_required(role=ROLE)
def send():
    values = dict(request.form)
    fields = read_form(request.form)
    batch = request.form.get("batch", "")
    if not BATCH_RE.match(batch):
        abort(400)
    try:
        check_scope(fields["to"])
        queued = broadcast.queue(runtime(), fields["text"], fields["to"], fields["at"] or None,
                                 title=fields["title"], batch=batch, scope=scope())
    except broadcast.BroadcastError as exc:
        return _compose(values, error=str(exc), status=400)
    when = "立即发送" if not fields["at"] else \
        f"定于 {fmt_local(queued.due_at, runtime().settings.tz, year=True)} 发送"
    record("群发通知", queued.batch, f"{queued.label}，{queued.count} 人，{when}：{fields['text'][:60]}")
    flash(f"已加入发送队列：{queued.label}，共 {queued.count} 人，{when}。", "ok")
    return redirect(url_for(".batch", batch=queued.batch))


@bp.get("/<batch>")
@login_required(role=ROLE)
def batch(batch: str):
    """One broadcast's delivery: sent, pending, failed with the reasons."""
    if not BATCH_RE.match(batch):
        abort(404)
    database = db()
    counts = deliveries.progress(database, batch)
    if not counts:
        abort(404)
    info = next((b for b in deliveries.batches(database, limit=200) if b["batch"] == batch), None)
    total = sum(counts.values())
    pending = counts.get("pending", 0) + counts.get("sending", 0)
    return render_template("console/broadcast.html", batch=batch, info=info, counts=counts,
                           total=total, pending=pending, words=STATUS_WORDS,
                           reasons=deliveries.reasons(database, batch),
                           reports=[(report_words(r["report"]), r["count"])
                                    for r in deliveries.report_counts(database, batch)],
                           due_future=bool(info and info["due_at"] > to_db(now())))
