"""The console's gate: login and logout, session expiry, login-attempt limits, roles, CSRF.

Every /admin request passes `gate()` first: anything but the login page and the static files
needs a live session (its id kept on the server, so logout ends it), and every POST needs the
session's CSRF token (form field or header). Failed logins slow down the client and the typed
name with growing delays; no account is ever locked, and unknown names go the same way.
"""
from __future__ import annotations

import functools
import hmac
import logging
import math
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template,
                   request, session, url_for)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from werkzeug.security import check_password_hash, generate_password_hash

from alliance import scope as scopes
from clock import fmt_iso_local, fmt_local, from_db
from storage import admins, audit

log = logging.getLogger(__name__)
bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

FREE_TRIES = 3  # failed logins (per client, per name) before each next try must wait
FIRST_DELAY = timedelta(seconds=2)  # then 2 s, 4 s, 8 s … doubling per failure
MAX_DELAY = timedelta(minutes=15)
FORGET_FAILURES = timedelta(hours=1)  # a count with no failure for this long starts again
DEVICE_COOKIE = "console_device"  # "this browser logged in as NAME before": skips the delays
DEVICE_MAX_AGE = timedelta(days=90)
MAX_SESSION = timedelta(hours=12)  # a session ends this long after login, however busy
PUBLIC = {"console.login", "console.static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MIN_PASSWORD = 8
ROLE_NAMES = {"admin": "管理员", "organiser": "组织者"}
MAX_ID = 2**63 - 1  # SQLite's largest integer
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
UPLOAD_ENDPOINTS = {"console.knowledge.upload"}
_dummy_hash: list[str] = []


def runtime():
    return current_app.extensions["chengcheng"]


def db():
    return runtime().db()


def now():
    return runtime().clock.now()


def hash_password(password: str) -> str:
    """Raises ValueError for a password too short to keep anyone out."""
    if len(password or "") < MIN_PASSWORD:
        raise ValueError(f"密码至少 {MIN_PASSWORD} 位")
    return generate_password_hash(password)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf" value="%s">') % csrf_token()


def _csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _idle_limit() -> timedelta:
    return timedelta(minutes=runtime().settings.console_idle_minutes)


def _password_stamp(password_hash: str) -> str:
    """Kept in the (signed, readable) session cookie: a new password ends old sessions, and the
    cookie reveals nothing of the hash."""
    key = current_app.secret_key.encode()
    return hmac.new(key, password_hash.encode(), "sha256").hexdigest()[:20]


def current_admin() -> dict | None:
    """The logged-in account, or None (and the session cleared) when it expired, was ended on
    the server (logout, new password, account removed) or the account is gone."""
    admin_id = session.get("admin_id")
    if not admin_id:
        return None
    stamp = now().timestamp()
    seen, started = session.get("seen", 0), session.get("login_at", 0)
    row = admins.get(db(), admin_id)
    expired = (stamp - seen > _idle_limit().total_seconds()
               or stamp - started > MAX_SESSION.total_seconds())
    if (expired or row is None or _password_stamp(row["password_hash"]) != session.get("pw")
            or not admins.session_alive(db(), session.get("sid") or "", admin_id)):
        session.clear()
        g.session_expired = expired
        return None
    session["seen"] = stamp
    return {"id": row["id"], "name": row["name"], "role": row["role"],
            "scope": row.get("scope")}


def scope() -> scopes.Scope:
    """What the logged-in account may see (三级): every view filters its rows through this one
    object; admins see everything, and so does an organiser without a scope."""
    return g.get("scope") or scopes.NOTHING


def scope_of(admin: dict | None) -> scopes.Scope:
    if admin is None or admin["role"] == "admin":
        return scopes.EVERYTHING
    return scopes.load(admin.get("scope"))


def allowed(admin: dict | None, role: str | tuple[str, ...] | None) -> bool:
    """Admins may do everything; other roles only what a view names."""
    if admin is None:
        return False
    if role is None or admin["role"] == "admin":
        return True
    return admin["role"] in ((role,) if isinstance(role, str) else role)


def login_required(view=None, *, role: str | tuple[str, ...] | None = None):
    """Deny the view to anyone without a live session (login page) or without the role (403)."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            admin = g.get("admin")
            if admin is None:
                return _to_login()
            if not allowed(admin, role):
                abort(403)
            return fn(*args, **kwargs)
        wrapped.required_role = role
        return wrapped
    return decorate(view) if view is not None else decorate


def _to_login():
    """Pages send the browser to the login page; posts and JSON calls get a 403."""
    if _wants_json():
        return jsonify(error="请先登录"), 403
    if request.method not in SAFE_METHODS:
        abort(403)
    if g.get("session_expired"):
        flash("登录已过期，请重新登录。", "warn")
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    """Only a path inside the console, never another site (open redirect)."""
    if target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith("/admin")
                and "\\" not in target and not target.startswith("//")
                and target.isprintable()):
            return target
    return url_for("console.dashboard.index")


def actor() -> str:
    """The logged-in account's name (for created_by / updated_by / promoted_by)."""
    return g.admin["name"]


def record(action: str, target: str | None = None, detail: str | None = None) -> None:
    """One audit line in the name of the logged-in account."""
    admin = g.get("admin")
    audit.record(db(), admin["name"] if admin else "-", action, target, detail, now())


@bp.before_request
def gate():
    if request.endpoint == "console.static":
        return None
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = UPLOAD_MAX_BYTES
    g.admin = current_admin()
    g.scope = scope_of(g.admin)
    if request.endpoint not in PUBLIC and g.admin is None:
        return _to_login()
    if request.method not in SAFE_METHODS and not _csrf_ok():
        log.warning("console: CSRF check failed on %s", request.path)
        if request.endpoint == "console.login":
            return render_template("console/login.html", error="页面已过期，请重新输入。",
                                   name=""), 400
        if _wants_json():
            return jsonify(error="安全校验失败，请刷新页面后重试"), 403
        return render_template("console/error.html", code=403,
                               words="安全校验失败：页面已过期，请刷新后重试"), 403
    if any(isinstance(v, int) and not 0 <= v <= MAX_ID for v in (request.view_args or {}).values()):
        abort(404)  # no row has such an id, and SQLite could not even compare it


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
def error_page(exc):
    """Console errors as a console page, in words for organisers (not the webhook's)."""
    words = {400: "请求有误，请返回重试", 403: "没有权限", 404: "没有这个页面"}[exc.code]
    return render_template("console/error.html", code=exc.code, words=words), exc.code


def csp_nonce() -> str:
    """This response's nonce: the only inline <script> and <style> blocks the browser runs."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def security_headers(resp):
    """Console and simulator pages hold member data and act for organisers: no caching, no
    framing by others, no scripts but our own (Content-Security-Policy with a nonce)."""
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    frame = "'self'" if resp.headers["X-Frame-Options"] == "SAMEORIGIN" else "'none'"
    nonce = csp_nonce()
    resp.headers.setdefault("Content-Security-Policy", "; ".join((
        "default-src 'self'", f"script-src 'self' 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'", "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:", "object-src 'none'", "base-uri 'none'",
        "form-action 'self'", f"frame-ancestors {frame}")))
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    resp.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return resp


@bp.app_context_processor
def helpers() -> dict:
    return {"csrf_field": csrf_field, "role_names": ROLE_NAMES,
            "tz_name": runtime().settings.timezone, "csp_nonce": csp_nonce}


@bp.app_template_global()
def can(role: str | tuple[str, ...] | None) -> bool:
    return allowed(g.get("admin"), role)


@bp.app_template_filter("when")
def when_filter(stamp: str | None, year: bool = False) -> str:
    """A stored UTC time as organisers read it (BOT_TIMEZONE)."""
    return fmt_local(from_db(stamp), runtime().settings.tz, year=year) if stamp else "—"


@bp.app_template_filter("when_iso")
def when_iso_filter(stamp: str | None) -> str:
    return fmt_iso_local(from_db(stamp), runtime().settings.tz) if stamp else ""


def failure_delay(failures: int) -> timedelta:
    """How long a client or a name waits after its n-th failed login in a row."""
    if failures <= FREE_TRIES:
        return timedelta(0)
    return min(MAX_DELAY, FIRST_DELAY * 2 ** min(failures - FREE_TRIES - 1, 30))


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="console-device")


def _device_mark(row: dict) -> list[str]:
    """What the device cookie holds: the name and the password it logged in with (as a stamp),
    so a new password also ends the exemption of browsers that knew the old one."""
    return [row["name"], _password_stamp(row["password_hash"])]


def _known_device(name: str) -> bool:
    """This browser logged in as `name`, with its current password, before: others' failures
    never keep it waiting. (Only a real login sets the cookie, so unknown names never have one.)"""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie or not name:
        return False
    try:
        mark = _device_signer().loads(cookie, max_age=DEVICE_MAX_AGE.total_seconds())
    except BadSignature:
        return False
    if not isinstance(mark, list) or mark[:1] != [name]:
        return False
    row = admins.by_name(db(), name)
    return row is not None and mark == _device_mark(row)


def _throttle_keys(name: str) -> list[str]:
    return [f"client:{request.remote_addr or '-'}", f"name:{name.casefold()}"]


def _wait_words(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    return f"{seconds} 秒" if seconds < 60 else f"{math.ceil(seconds / 60)} 分钟"


def _check(name: str, password: str) -> tuple[dict | None, str | None, int]:
    """(account, error words, status). A name that does not exist goes exactly the way of a
    wrong password for one that does: same delays, same hash check, same writes, same words."""
    database, moment = db(), now()
    keys = _throttle_keys(name)
    if not _known_device(name) and (until := admins.blocked_until(database, keys, moment)):
        wait = _wait_words((until - moment).total_seconds())
        return None, f"尝试次数过多，请 {wait}后再试。", 429
    row = admins.by_name(database, name) if name else None
    if not _dummy_hash:
        _dummy_hash.append(generate_password_hash(secrets.token_hex(8)))
    ok = check_password_hash(row["password_hash"] if row else _dummy_hash[0], password or "")
    if row and ok:
        admins.clear_failures(database, keys)
        return row, None, 200
    admins.record_failure(database, keys, moment, forget_after=FORGET_FAILURES,
                          delay=failure_delay)
    audit.record(database, row["name"] if row else "-", "登录失败", None, None, moment)
    return None, "用户名或密码错误。", 401


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if g.admin:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("console/login.html", error=None, name="")
    name = request.form.get("name", "").strip()[:64]
    row, error, status = _check(name, request.form.get("password", ""))
    if row is None:
        return render_template("console/login.html", error=error, name=name), status
    session.clear()  # a fresh session (and CSRF token) for the new login: no fixation
    stamp = now().timestamp()
    session_id = admins.start_session(db(), row["id"], now(), max_age=MAX_SESSION)
    session.update(admin_id=row["id"], login_at=stamp, seen=stamp, sid=session_id,
                   pw=_password_stamp(row["password_hash"]))
    csrf_token()
    g.admin = {"id": row["id"], "name": row["name"], "role": row["role"]}
    record("登录")
    resp = redirect(_safe_next(request.args.get("next")))
    resp.set_cookie(DEVICE_COOKIE, _device_signer().dumps(_device_mark(row)), path="/admin",
                    max_age=int(DEVICE_MAX_AGE.total_seconds()), httponly=True, samesite="Lax",
                    secure=current_app.config["SESSION_COOKIE_SECURE"])
    return resp


@bp.post("/logout")
@login_required
def logout():
    record("退出")
    admins.end_session(db(), session.get("sid") or "")
    session.clear()
    flash("已退出登录。", "ok")
    return redirect(url_for("console.login"))
