"""项目化运作 in the console: each 共同体's projects for a year with their activities,
participants and hours so far; a project whose quarter has come with no activity is flagged.
Organisers add projects for a new year here, and download the November summary (评议激励).
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from activities import service as activities
from alliance import groups
from alliance import projects as svc
from alliance import summary
from alliance.groups import QUARTER_WORDS
from clock import fmt_iso_local
from console.auth import actor, db, login_required, now, record, runtime, scope
from storage import projects as store

bp = Blueprint("projects", __name__, url_prefix="/projects")
ROLE = "organiser"
MIMETYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _today():
    return now().astimezone(runtime().settings.tz)


def _year() -> int:
    years = store.years(db())
    text = request.values.get("year") or ""
    if text.isdigit() and 2000 <= int(text) <= 2100:
        return int(text)
    this = _today().year
    if this in years or not years:
        return this
    earlier = [y for y in years if y <= this]
    return max(earlier) if earlier else min(years)


@bp.get("/")
@login_required(role=ROLE)
def index():
    year = _year()
    view = [(g, items) for g, items in svc.year_view(db(), year, _today())
            if scope().has_group(g.key)]
    due = sum(1 for _, items in view for p in items if p["flag"] == "due")
    years = sorted(set(store.years(db())) | {year, _today().year})
    return render_template("console/projects.html", view=view, year=year, years=years, due=due,
                           groups=scope().groups(), formats=summary.FORMATS)


@bp.get("/<int:project_id>")
@login_required(role=ROLE)
def detail(project_id: int):
    p = store.get(db(), project_id)
    if p is None or not scope().has_group(p["grp"]):
        abort(404)
    rows = store.for_year(db(), p["year"], p["grp"])
    p = next(r for r in rows if r["id"] == project_id)
    f = svc.flag(p, _today())
    tz = runtime().settings.tz
    acts = [{**a, "when": activities.when(a, tz), "where": activities.where(a),
             "status_words": activities.STATUS_WORDS.get(a["status"], a["status"])}
            for a in store.activities_of(db(), project_id)]
    return render_template("console/project.html", p=p, flag=f, acts=acts,
                           group=groups.by_key(p["grp"]),
                           quarters=groups.quarters_words(store.quarters_of(p)))


@bp.route("/new", methods=["GET", "POST"])
@login_required(role=ROLE)
def new():
    values = {"year": str(_today().year + (1 if _today().month >= 10 else 0)),
              "type": "规定项目", "grp": request.args.get("grp", ""), "quarters": []}
    if request.method == "POST":
        values = {"year": request.form.get("year", ""), "grp": request.form.get("grp", ""),
                  "name": request.form.get("name", ""), "type": request.form.get("type", ""),
                  "quarters": request.form.getlist("quarters")}
        try:
            if not scope().has_group(values["grp"]):
                raise svc.ProjectError(f"你的账号只管理{scope().label}的项目")
            year = int(values["year"]) if values["year"].strip().isdigit() else 0
            quarters = [int(q) for q in values["quarters"] if q.isdigit()]
            project_id = svc.add(db(), year=year, group_key=values["grp"], name=values["name"],
                                 type_=values["type"], quarters=quarters, actor=actor(),
                                 now=now())
        except svc.ProjectError as exc:
            return render_template("console/project_form.html", values=values, error=str(exc),
                                   groups=scope().groups(), types=svc.TYPES,
                                   quarters=QUARTER_WORDS), 400
        record("新增联盟项目", f"项目 {project_id}",
               f"{year}年 {groups.name_of(values['grp'])}：{values['name'].strip()}")
        flash("项目已添加。", "ok")
        return redirect(url_for(".index", year=year))
    return render_template("console/project_form.html", values=values, error=None,
                           groups=scope().groups(), types=svc.TYPES, quarters=QUARTER_WORDS)


@bp.post("/summary")
@login_required(role=ROLE)
def download_summary():
    """The November summary for a year (all groups or one), as Word or Excel."""
    fmt = request.form.get("format", "docx")
    if fmt not in summary.FORMATS:
        abort(400)
    year = _year()
    key = request.form.get("grp") or None
    if key and groups.by_key(key) is None:
        abort(400)
    if scope().limited:
        mine = [g.key for g in scope().groups()]
        key = key or (mine[0] if len(mine) == 1 else None)
        if key not in mine:
            abort(403)
    moment, tz = now(), runtime().settings.tz
    data = summary.build(db(), year, moment, tz, key)
    with tempfile.TemporaryDirectory() as tmp:
        path = summary.write(data, year, fmt, Path(tmp) / f"summary.{fmt}",
                             generated=fmt_iso_local(moment, tz), group_key=key)
        blob = path.read_bytes()
    record("生成年度汇总", f"{year}年", f"{fmt.upper()}，{groups.name_of(key) if key else '全部共同体'}")
    return send_file(io.BytesIO(blob), mimetype=MIMETYPES[fmt], as_attachment=True,
                     download_name=summary.default_name(year, fmt, key))
