"""活动报名: create, edit, open, close, cancel; the sign-up list; promote; export; check-in QR.

Every rule lives in activities/service.py (the same functions the chat and the CLI call);
this module only reads forms, calls them and shows the result.
"""
from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

from flask import (Blueprint, Response, abort, flash, redirect, render_template, request,
                   send_file, url_for)

from activities import ActivityError, ActivityNotFound, exports
from activities import service as svc
from activities.qr import checkin_qr
from alliance import projects as alliance_projects
from clock import TimeFormatError, TimeRangeError, fmt_iso_local, from_db, parse_local
from console.auth import actor, db, login_required, now, record, runtime, scope
from knowledge.data import load_alliance
from privacy import mask_phone
from storage import projects as project_store

bp = Blueprint("activities", __name__, url_prefix="/activities")
ROLE = "organiser"  # organisers and admins run activities and sign-ups
SECTIONS = (("open", "报名中"), ("closed", "已截止"), ("draft", "草稿"), ("cancelled", "已取消"))


class FormError(ValueError):
    """A field an organiser typed cannot be read."""


def _time(form, name: str, label: str):
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        return parse_local(text, runtime().settings.tz)
    except TimeRangeError as exc:
        raise FormError(f"{label}：{exc}") from exc
    except TimeFormatError as exc:
        raise FormError(f"{label}格式不对，请用 YYYY-MM-DD HH:MM") from exc


def _number(form, name: str, label: str, kind):
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError as exc:
        raise FormError(f"{label}应为数字：{text}") from exc
    if not math.isfinite(value):
        raise FormError(f"{label}应为数字：{text}")
    return value


def read_form(form) -> dict:
    """The activity fields as service.create_activity/update_activity take them."""
    return {"title": form.get("title", ""), "group": form.get("group", ""),
            "location": form.get("location", ""), "description": form.get("description", ""),
            "start": _time(form, "start", "开始时间"), "end": _time(form, "end", "结束时间"),
            "deadline": _time(form, "deadline", "报名截止时间"),
            "capacity": _number(form, "capacity", "名额", int),
            "hours": _number(form, "hours", "志愿时长", float) or 0,
            "checkout": form.get("checkout") == "1",
            "hours_step": _number(form, "hours_step", "时长取整", float) or 0.5,
            "project": _project(form)}


def _project(form) -> int | None:
    """The alliance project the activity belongs to (项目化运作), or None."""
    value = _number(form, "project", "所属项目", int)
    if value is not None and project_store.get(db(), value) is None:
        raise FormError("所选的联盟项目不存在，请重新选择")
    return value


def form_of(activity: dict) -> dict:
    """An activity as the form shows it (times in BOT_TIMEZONE for datetime-local inputs)."""
    tz = runtime().settings.tz

    def local(stamp):
        return fmt_iso_local(from_db(stamp), tz).replace(" ", "T")

    return {"title": activity["title"], "group": activity.get("grp") or "",
            "location": activity.get("location") or "",
            "description": activity.get("description") or "",
            "start": local(activity.get("start_at")), "end": local(activity.get("end_at")),
            "deadline": local(activity.get("deadline_at")),
            "capacity": activity.get("capacity") if activity.get("capacity") is not None else "",
            "hours": svc.fmt_hours(activity.get("hours")) if activity.get("hours") else "",
            "checkout": bool(activity.get("checkout")),
            "hours_step": svc.fmt_hours(activity.get("hours_step") or 0.5),
            "project": activity.get("project_id") or ""}


@bp.app_context_processor
def form_choices() -> dict:
    return {"hours_steps": [svc.fmt_hours(x) for x in svc.HOURS_STEPS]}


def project_choices() -> list[dict]:
    return [p for p in alliance_projects.choices(db()) if scope().has_group(p.get("grp"))]


def group_names() -> list[str]:
    """Suggestions for the group field: the five 共同体 and the union (those in scope)."""
    if scope().limited:
        return [g.title for g in scope().groups()]
    return [f"{g['name']}共同体" for g in load_alliance().get("groups") or []] + ["工会"]


def in_scope(activity: dict) -> bool:
    """An activity is in the account's scope when its project's group or its group field is."""
    limit = scope()
    if not limit.limited:
        return True
    project = project_store.get(db(), activity["project_id"]) if activity.get("project_id") \
        else None
    if project is not None:
        return limit.has_group(project["grp"])
    return limit.has_group_text(activity.get("grp"))


def _check_scope(fields: dict) -> None:
    """A scoped organiser creates and edits only activities inside the scope."""
    probe = {"grp": fields.get("group"), "project_id": fields.get("project")}
    if not in_scope(probe):
        raise FormError(f"你的账号只管理{scope().label}的活动：请选择范围内的共同体或项目")


def signups(activity_id: int) -> list[dict]:
    """The activity's sign-ups whose members are in the account's scope."""
    return scope().members(svc.signup_list(db(), activity_id))


@bp.app_template_filter("when_dt")
def when_dt_filter(moment) -> str:
    """An aware datetime as organisers read it (BOT_TIMEZONE)."""
    from clock import fmt_local

    return fmt_local(moment, runtime().settings.tz) if moment else ""


@bp.app_template_filter("hours")
def hours_filter(value) -> str:
    """Volunteer hours as members read them: 2.5, 3 (never 3.0)."""
    return svc.fmt_hours(value)


def wechat_api():
    from wechat.api import WeChatAPI

    rt = runtime()
    return rt.service("wechat_api", lambda: WeChatAPI(rt.settings, rt.db, rt.clock.now))


def _qr(activity: dict):
    """The activity's WeChat check-in QR code (made on first view), or None."""
    return checkin_qr(db(), wechat_api(), activity, now())


def _activity_or_404(activity_id: int) -> dict:
    try:
        activity = svc.get_activity(db(), activity_id)
    except ActivityNotFound:
        abort(404)
    if not in_scope(activity):
        abort(404)
    return activity


def _view(activity: dict) -> dict:
    tz = runtime().settings.tz
    return {**activity, "when": svc.when(activity, tz), "where": svc.where(activity),
            "left": svc.places_left(activity), "length": svc.length_hours(activity),
            "started": bool(svc.start_of(activity) and svc.start_of(activity) <= now()),
            "status_words": svc.STATUS_WORDS.get(activity["status"], activity["status"])}


@bp.get("/")
@login_required(role=ROLE)
def index():
    rows = [_view(a) for a in svc.list_activities(db()) if in_scope(a)]
    sections = [(key, words, [a for a in rows if a["status"] == key]) for key, words in SECTIONS]
    return render_template("console/activities.html", sections=sections)


@bp.route("/new", methods=["GET", "POST"])
@login_required(role=ROLE)
def new():
    values = {"status": "open"}
    if request.method == "POST":
        values = dict(request.form)
        try:
            fields = read_form(request.form)
            _check_scope(fields)
            status = "draft" if request.form.get("status") == "draft" else "open"
            activity_id = svc.create_activity(db(), now=now(), status=status,
                                              created_by=actor(), **fields)
        except (FormError, ActivityError) as exc:
            return render_template("console/activity_form.html", values=values, error=str(exc),
                                   groups=group_names(), projects=project_choices(),
                                   activity=None), 400
        record("新建活动", f"活动 {activity_id}", fields["title"])
        flash("活动已发布，成员现在可以报名。" if status == "open" else "已保存为草稿。", "ok")
        return redirect(url_for(".detail", activity_id=activity_id))
    return render_template("console/activity_form.html", values=values, error=None,
                           groups=group_names(), projects=project_choices(), activity=None)


@bp.route("/<int:activity_id>/edit", methods=["GET", "POST"])
@login_required(role=ROLE)
def edit(activity_id: int):
    activity = _activity_or_404(activity_id)
    if request.method == "POST":
        try:
            changes = read_form(request.form)
            _check_scope(changes)
            promoted = svc.update_activity(db(), activity_id, changes, now(),
                                           runtime().settings.tz)
        except (FormError, ActivityError) as exc:
            return render_template("console/activity_form.html", values=dict(request.form),
                                   error=str(exc), groups=group_names(),
                                   projects=project_choices(), activity=activity), 400
        record("修改活动", f"活动 {activity_id}", changes["title"])
        if promoted:
            runtime().wake_dispatcher()
            flash(f"已保存。名额增加，{len(promoted)} 位候补已自动转正并收到通知。", "ok")
        else:
            flash("已保存。", "ok")
        return redirect(url_for(".detail", activity_id=activity_id))
    return render_template("console/activity_form.html", values=form_of(activity), error=None,
                           groups=group_names(), projects=project_choices(),
                           activity=activity)


@bp.get("/<int:activity_id>")
@login_required(role=ROLE)
def detail(activity_id: int):
    activity = _view(_activity_or_404(activity_id))
    signups_ = signups(activity_id)
    for s in signups_:
        s["phone_masked"] = mask_phone(s.get("phone"))
        s["status_words"] = svc.SIGNUP_WORDS.get(s["status"], s["status"])
    return render_template(
        "console/activity.html", a=activity, signups=signups_,
        live=[s for s in signups_ if s["status"] != "cancelled"],
        cancelled=[s for s in signups_ if s["status"] == "cancelled"],
        checked_in=sum(1 for s in signups_ if s["checked_in_at"] and s["status"] == "confirmed"),
        qr=_qr(activity), reports=_reports(activity_id), formats=exports.FORMATS)


def _reports(activity_id: int) -> list[tuple[str, int]]:
    from scheduler.dispatcher import report_words
    from storage import deliveries

    return [(report_words(r["report"]), r["count"])
            for r in deliveries.report_counts_for_activity(db(), activity_id)]


@bp.get("/<int:activity_id>/qr")
@login_required(role=ROLE)
def qr_page(activity_id: int):
    """The check-in QR code on its own page, for a phone held up at the venue or for print."""
    activity = _view(_activity_or_404(activity_id))
    return render_template("console/checkin_qr.html", a=activity, qr=_qr(activity))


@bp.get("/<int:activity_id>/qr.png")
@login_required(role=ROLE)
def qr_image(activity_id: int):
    """The QR image from WeChat's showqrcode, passed through (no third-party image on the page)."""
    from wechat.api import WeChatAPIError

    qr = _qr(_activity_or_404(activity_id))
    if qr is None or not qr.ticket:
        abort(404)
    try:
        data, ctype = wechat_api().qrcode_image(qr.ticket)
    except WeChatAPIError:
        abort(502)
    return Response(data, mimetype=ctype.split(";")[0])


@bp.post("/<int:activity_id>/status")
@login_required(role=ROLE)
def status(activity_id: int):
    _activity_or_404(activity_id)
    action = request.form.get("action")
    database, moment, tz = db(), now(), runtime().settings.tz
    try:
        if action == "open":
            svc.open_activity(database, activity_id, moment)
            message, words = "已开放报名。", "开放报名"
        elif action == "close":
            svc.close_activity(database, activity_id, moment)
            message, words = "已截止报名，已报名的成员不受影响。", "截止报名"
        elif action == "cancel":
            reason = (request.form.get("reason") or "").strip()[:100] or None
            told = svc.cancel_activity(database, activity_id, moment, tz, reason)
            runtime().wake_dispatcher()
            message, words = f"活动已取消，正在通知已报名的 {len(told)} 位成员。", "取消活动"
        else:
            abort(400)
    except ActivityError as exc:
        flash(str(exc), "bad")
        return redirect(url_for(".detail", activity_id=activity_id))
    record(words, f"活动 {activity_id}", request.form.get("reason") if action == "cancel" else None)
    flash(message, "ok")
    return redirect(url_for(".detail", activity_id=activity_id))


def _signup_or_404(activity_id: int, signup_id: int) -> dict:
    """A sign-up of this activity (which the account may see), else 404."""
    _activity_or_404(activity_id)
    signup = next((s for s in signups(activity_id) if s["id"] == signup_id), None)
    if signup is None:
        abort(404)
    return signup


@bp.post("/<int:activity_id>/signups/<int:signup_id>/promote")
@login_required(role=ROLE)
def promote(activity_id: int, signup_id: int):
    _signup_or_404(activity_id, signup_id)
    add_place = request.form.get("add_place") == "1"
    try:
        svc.promote(db(), signup_id, actor(), now(), runtime().settings.tz, add_place=add_place)
    except svc.ActivityFull:
        flash("名额已满：勾选“增加一个名额”才能让这位候补转正。", "warn")
        return redirect(url_for(".detail", activity_id=activity_id))
    except ActivityError as exc:
        flash(str(exc), "bad")
        return redirect(url_for(".detail", activity_id=activity_id))
    runtime().wake_dispatcher()
    record("候补转正", f"活动 {activity_id} 报名 {signup_id}", "增加一个名额" if add_place else None)
    flash("已转正，并已通知该成员。", "ok")
    return redirect(url_for(".detail", activity_id=activity_id))


@bp.post("/<int:activity_id>/signups/<int:signup_id>/hours")
@login_required(role=ROLE)
def hours(activity_id: int, signup_id: int):
    _signup_or_404(activity_id, signup_id)
    try:
        value = _number(request.form, "hours", "志愿时长", float)
        svc.correct_hours(db(), signup_id, value, request.form.get("reason", ""), actor(), now())
    except (FormError, ActivityError) as exc:
        flash(str(exc), "bad")
        return redirect(url_for(".detail", activity_id=activity_id))
    record("更正时长", f"活动 {activity_id} 报名 {signup_id}",
           f"{svc.fmt_hours(value)} 小时；原因：{request.form.get('reason', '').strip()}")
    flash("志愿时长已更正，更正记录已保存。", "ok")
    return redirect(url_for(".detail", activity_id=activity_id))


@bp.post("/<int:activity_id>/signups/<int:signup_id>/certificate")
@login_required(role=ROLE)
def certificate(activity_id: int, signup_id: int):
    """The member's 志愿服务记录证明 as a PDF (numbered, recorded in the audit log)."""
    from activities import certificate as cert

    signup = _signup_or_404(activity_id, signup_id)
    try:
        issued = cert.issue(db(), signup["openid"], now(), runtime().settings.tz, actor())
    except ActivityError as exc:
        flash(str(exc), "bad")
        return redirect(url_for(".detail", activity_id=activity_id))
    return send_file(io.BytesIO(issued.pdf), mimetype="application/pdf", as_attachment=True,
                     download_name=f"志愿服务记录证明-{issued.number}.pdf")


@bp.post("/<int:activity_id>/export")
@login_required(role=ROLE)
def export(activity_id: int):
    """CSV or XLSX of the sign-up list; phones masked unless revealed (and the reveal is logged)."""
    activity = _activity_or_404(activity_id)
    fmt = request.form.get("format", "csv")
    if fmt not in exports.FORMATS:
        abort(400)
    reveal = request.form.get("reveal") == "1"
    header, rows = svc.export_rows(db(), activity_id, runtime().settings.tz, reveal=reveal,
                                   keep=scope().has_unit)
    record("导出名单（显示手机号）" if reveal else "导出名单", f"活动 {activity_id}",
           f"{fmt.upper()}，{len(rows)} 人" + ("，手机号完整显示" if reveal else "，手机号已隐藏"))
    name = f"报名名单-{activity_id}-{activity['title'][:20]}.{fmt}"
    if fmt == "csv":
        data = exports.to_csv(header, rows).encode("utf-8-sig")
        return send_file(io.BytesIO(data), mimetype="text/csv; charset=utf-8",
                         as_attachment=True, download_name=name)
    with tempfile.TemporaryDirectory() as tmp:
        caption = f"{activity['title']}（{svc.when(activity, runtime().settings.tz)}）"
        path = exports.to_xlsx(header, rows, Path(tmp) / "export.xlsx", caption=caption)
        data = path.read_bytes()
    return send_file(io.BytesIO(data), as_attachment=True, download_name=name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
