"""需求征集 in the console: needs by 共同体 and status; adopt as a project (定向揭榜 or 自由揭榜),
揭榜 by a unit (first claim wins), mark done, decline with a reason; export as CSV.

Every rule lives in alliance/needs.py; the member's push is queued there with the change.
"""
from __future__ import annotations

import io

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from activities import exports
from alliance import groups
from alliance import needs as svc
from alliance.groups import QUARTER_WORDS, quarter_of_month
from clock import fmt_iso_local, from_db
from console.auth import actor, db, login_required, now, record, runtime, scope
from storage import needs as store

bp = Blueprint("needs", __name__, url_prefix="/needs")
ROLE = "organiser"
STATUS_ORDER = ("new", "adopted", "claimed", "done", "rejected")
UNGROUPED = "-"


def in_scope(need: dict) -> bool:
    """A need is the scope's when its member's unit is (or, for a 共同体 scope, it was put
    in that group)."""
    limit = scope()
    return limit.has_unit(need.get("unit")) or (
        limit.text.startswith("group:") and limit.has_group(need.get("grp")))


def listing(grp: str | None = None, status: str | None = None) -> list[dict]:
    return [n for n in store.listing(db(), grp, status) if in_scope(n)]


def _need_or_404(need_id: int) -> dict:
    try:
        need = svc.get(db(), need_id)
    except svc.NeedNotFound:
        abort(404)
    if not in_scope(need):
        abort(404)
    return need


def _view(need: dict) -> dict:
    return {**need, "status_words": svc.STATUS_WORDS[need["status"]],
            "mode_words": svc.MODE_WORDS.get(need.get("mode") or "", ""),
            "group_name": groups.name_of(need.get("grp")),
            "line": svc.status_line(need)}


@bp.get("/")
@login_required(role=ROLE)
def index():
    grp = request.args.get("grp") or None
    status = request.args.get("status") or None
    if grp and grp != UNGROUPED and groups.by_key(grp) is None:
        abort(404)
    if status and status not in svc.STATUS_WORDS:
        abort(404)
    items = [_view(n) for n in listing(grp, status)]
    sections = [(g.key, g.title, [n for n in items if n["grp"] == g.key]) for g in groups.groups()]
    sections.append((UNGROUPED, "未归组（单位不在五个共同体）", [n for n in items if not n["grp"]]))
    if scope().limited:
        sections = [s for s in sections if s[2] or scope().has_group(s[0])]
        mine = listing()
        by_status = {s: sum(1 for n in mine if n["status"] == s) for s in STATUS_ORDER}
    else:
        counts = store.counts(db())
        by_status = {s: sum(v for (_, st), v in counts.items() if st == s) for s in STATUS_ORDER}
    return render_template("console/needs.html", sections=sections, grp=grp, status=status,
                           by_status=by_status, status_words=svc.STATUS_WORDS,
                           groups=scope().groups(), total=sum(by_status.values()))


@bp.get("/<int:need_id>")
@login_required(role=ROLE)
def detail(need_id: int):
    need = _view(_need_or_404(need_id))
    here = now().astimezone(runtime().settings.tz)
    return render_template("console/need.html", n=need, events=store.events(db(), need_id),
                           units=groups.unit_names(), groups=groups.groups(),
                           quarters=QUARTER_WORDS, year=here.year,
                           quarter=quarter_of_month(here.month),
                           status_words=svc.STATUS_WORDS)


def _done(need_id: int, action: str, detail: str | None, message: str):
    record(action, f"需求 {need_id}", detail)
    runtime().wake_dispatcher()
    return _back(need_id, message, "ok")


def _back(need_id: int, message: str, kind: str):
    """To the need's page, with a message (ok, warn or bad) on it."""
    flash(message, kind)
    return redirect(url_for(".detail", need_id=need_id))


def _int(name: str, default: int | None = None) -> int | None:
    try:
        return int(request.form.get(name) or "")
    except ValueError:
        return default


@bp.post("/<int:need_id>/adopt")
@login_required(role=ROLE)
def adopt(need_id: int):
    _need_or_404(need_id)
    mode = request.form.get("mode", "")
    try:
        need = svc.adopt(db(), need_id, mode=mode, project_name=request.form.get("project", ""),
                         quarter=_int("quarter", 0), year=_int("year", 0), actor=actor(),
                         now=now(), unit=request.form.get("unit"))
    except svc.NeedError as exc:
        return _back(need_id, str(exc), "bad")
    words = svc.MODE_WORDS[mode]
    detail = f"{words}，项目“{need['project_name']}”" + \
        (f"，承接单位 {need['claimed_unit']}" if need["claimed_unit"] else "")
    return _done(need_id, "采纳需求", detail, f"已采纳并立项（{words}），已通知提出需求的成员。")


@bp.post("/<int:need_id>/claim")
@login_required(role=ROLE)
def claim(need_id: int):
    _need_or_404(need_id)
    unit = request.form.get("unit", "")
    try:
        svc.claim(db(), need_id, unit, actor(), now())
    except svc.AlreadyClaimed as exc:
        return _back(need_id, f"{exc}，本次揭榜未生效。", "warn")
    except svc.NeedError as exc:
        return _back(need_id, str(exc), "bad")
    return _done(need_id, "揭榜", unit, f"{unit}已揭榜，已通知提出需求的成员。")


@bp.post("/<int:need_id>/finish")
@login_required(role=ROLE)
def finish(need_id: int):
    _need_or_404(need_id)
    try:
        svc.finish(db(), need_id, actor(), now())
    except svc.NeedError as exc:
        return _back(need_id, str(exc), "bad")
    return _done(need_id, "需求完成", None, "已标记完成，已通知提出需求的成员。")


@bp.post("/<int:need_id>/decline")
@login_required(role=ROLE)
def decline(need_id: int):
    _need_or_404(need_id)
    reason = request.form.get("reason", "")
    try:
        svc.decline(db(), need_id, reason, actor(), now())
    except svc.NeedError as exc:
        return _back(need_id, str(exc), "bad")
    return _done(need_id, "不采纳需求", svc.clean(reason)[:200],
                 "已标记未采纳，原因已告知提出需求的成员。")


@bp.post("/<int:need_id>/group")
@login_required(role=ROLE)
def set_group(need_id: int):
    _need_or_404(need_id)
    if not scope().has_group(request.form.get("grp", "")):
        return _back(need_id, f"你的账号只管理{scope().label}的需求，不能归入其他共同体", "bad")
    try:
        need = svc.set_group(db(), need_id, request.form.get("grp", ""), actor(), now())
    except svc.NeedError as exc:
        return _back(need_id, str(exc), "bad")
    record("需求归组", f"需求 {need_id}", groups.name_of(need["grp"]))
    return _back(need_id, f"已归入{groups.by_key(need['grp']).title}。", "ok")


@bp.post("/export")
@login_required(role=ROLE)
def export():
    """All needs as CSV; member text is made formula-safe, names are not included."""
    tz = runtime().settings.tz
    header = ["编号", "共同体", "提出单位", "需求", "状态", "揭榜方式", "承接单位", "立项",
              "未采纳原因", "提交时间"]
    rows = [[n["id"], groups.name_of(n["grp"]), n["unit"] or "", n["content"],
             svc.STATUS_WORDS[n["status"]], svc.MODE_WORDS.get(n["mode"] or "", ""),
             n["claimed_unit"] or "", n["project_name"] or "", n["reason"] or "",
             fmt_iso_local(from_db(n["created_at"]), tz)] for n in listing()]
    record("导出需求", None, f"CSV，{len(rows)} 条")
    data = exports.to_csv(header, rows).encode("utf-8-sig")
    return send_file(io.BytesIO(data), mimetype="text/csv; charset=utf-8", as_attachment=True,
                     download_name="需求征集.csv")
