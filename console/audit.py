"""操作日志: who did what in the console and when. Admins only."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from console.auth import db, login_required
from storage import audit

bp = Blueprint("audit", __name__, url_prefix="/audit")
PER_PAGE = 50


@bp.get("/")
@login_required(role="admin")
def index():
    database = db()
    action = request.args.get("action") or None
    total = audit.count(database, action=action)
    pages = max(1, -(-total // PER_PAGE))
    page = min(pages, max(1, request.args.get("page", 1, type=int)))
    rows = audit.recent(database, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, action=action)
    return render_template("console/audit.html", rows=rows, total=total, page=page,
                           pages=pages, action=action,
                           actions=audit.actions(database))
