"""The console's doors: every /admin route needs a session and carries the security headers;
the Content-Security-Policy admits exactly the scripts and styles the pages use; odd input is a
clear 4xx, never a 500; passwords need not appear in the process list."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from werkzeug.routing import IntegerConverter, PathConverter

from activities import service
from bot import cli
from storage import admins, audit
from tests.conftest import TOKEN
from tests.test_console import PASSWORD, Console, add_admin, make_activity, sign_up

SKIP_METHODS = {"HEAD", "OPTIONS"}
TAG_RE = re.compile(r"<(script|style)\b([^>]*)>", re.I)
HANDLER_RE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def admin_routes(app) -> list[tuple[str, str, str]]:
    """(method, url, endpoint) of every /admin rule, with id 1 for numbers, 'x' for text."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint == "console.static":
            continue
        args = {}
        for name in rule.arguments:
            converter = rule._converters[name]
            args[name] = 1 if isinstance(converter, IntegerConverter) else \
                "x/y" if isinstance(converter, PathConverter) else "x"
        url = rule.build(args)[1]
        routes += [(method, url, rule.endpoint) for method in sorted(rule.methods - SKIP_METHODS)]
    return routes


def assert_security_headers(resp, where: str, *, page: bool = True) -> None:
    h = resp.headers
    csp = h.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and re.search(r"script-src 'self' 'nonce-[\w-]+'", csp) \
        and "object-src 'none'" in csp and "frame-ancestors" in csp, where
    assert "unsafe-inline" not in csp.split("style-src-attr")[0], where  # never for scripts
    assert h.get("X-Content-Type-Options") == "nosniff", where
    assert h.get("X-Frame-Options") in ("DENY", "SAMEORIGIN"), where
    assert h.get("Cache-Control") == "no-store" or not page, where
    assert h.get("Referrer-Policy") == "same-origin", where


def test_every_admin_route_needs_a_session_and_sends_the_security_headers(app, rt):
    routes = admin_routes(app)
    assert len(routes) >= 30 and ("GET", "/admin/login", "console.login") in routes
    anonymous = app.test_client()
    for method, url, endpoint in routes:
        resp = anonymous.open(url, method=method)
        assert_security_headers(resp, f"{method} {url}")
        if endpoint == "console.login":
            continue
        if method == "GET":
            assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], url
        else:
            assert resp.status_code == 403, (method, url)
        json = anonymous.open(url, method=method, headers={"Accept": "application/json"})
        assert json.status_code == 403 and json.get_json()["error"] == "请先登录", url


def test_a_session_of_a_removed_account_opens_no_route(app, rt):
    add_admin(rt, "临时")
    c = Console(app)
    c.login("临时")
    admins.delete(rt.db(), "临时")
    for method, url, endpoint in admin_routes(app):
        if endpoint != "console.login":
            assert c.client.open(url, method=method, data={"csrf": c.csrf}).status_code \
                in (302, 403), url


def test_logged_in_pages_and_errors_carry_the_headers_too(console, rt):
    for method, url, _ in admin_routes(console.client.application):
        if method == "GET":
            assert_security_headers(console.get(url), url)
    assert_security_headers(console.get("/admin/no-such-page"), "unknown page")
    assert_security_headers(console.get("/admin/static/console.css"), "static", page=False)


def test_the_policy_admits_exactly_the_pages_own_scripts_and_styles(console, rt, wechat):
    """Inline <script>/<style> blocks carry the response's nonce; no inline event handlers."""
    activity_id = make_activity(console)
    sign_up(wechat, "oMemberA0001", "张三", "13811112222")
    wechat.text("oMemberA0001", "机关食堂几点开饭")
    console.post("/admin/broadcasts/", {"text": "测试通知", "audience": "all", "when": "now",
                                        "confirm": "1"})
    pages = ["/admin/", "/admin/knowledge/", "/admin/activities/", "/admin/activities/new",
             f"/admin/activities/{activity_id}", f"/admin/activities/{activity_id}/edit",
             "/admin/broadcasts/",
             "/admin/simulator/", "/admin/simulator/chat", "/admin/audit/"]
    seen = 0
    for path in pages + [u for u in _links(console, "/admin/knowledge/")
                         + _links(console, "/admin/broadcasts/")]:
        resp = console.get(path)
        if resp.status_code != 200 or "html" not in resp.content_type:
            continue
        seen += 1
        html = resp.get_data(as_text=True)
        nonce = re.search(r"'nonce-([\w-]+)'", resp.headers["Content-Security-Policy"]).group(1)
        for tag, attrs in TAG_RE.findall(html):
            assert f'nonce="{nonce}"' in attrs or ' src="/admin/static/' in attrs, (path, tag)
        assert not HANDLER_RE.search(html), path
        assert "javascript:" not in html, path
    assert seen >= len(pages) - 1


def _links(console, page: str) -> list[str]:
    html = console.get(page).get_data(as_text=True)
    return [u for u in re.findall(r'href="(/admin/[^"#]*)"', html) if "/static/" not in u][:20]


def test_the_public_simulator_page_has_the_policy_and_nonces(make_app):
    client = make_app(wechat_appid="", simulator=None).test_client()
    resp = client.get("/simulator")
    assert_security_headers(resp, "/simulator")
    nonce = re.search(r"'nonce-([\w-]+)'", resp.headers["Content-Security-Policy"]).group(1)
    tags = TAG_RE.findall(resp.get_data(as_text=True))
    assert tags and all(f'nonce="{nonce}"' in attrs for _, attrs in tags)


def test_the_session_cookie_is_secure_behind_https_when_set(make_app, rt):
    app = make_app(secure_cookie=True)
    add_admin(app.extensions["chengcheng"], "王五")
    resp = Console(app).login("王五")
    cookies = resp.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in c for c in cookies)
    assert "Strict-Transport-Security" in resp.headers
    plain = Console(rt_app := make_app())
    add_admin(rt_app.extensions["chengcheng"], "赵六")
    assert all("Secure" not in c for c in plain.login("赵六").headers.getlist("Set-Cookie"))


# --- odd input: a clear answer, never a 500 ------------------------------------------------------

@pytest.mark.parametrize("field,value,words", [
    ("capacity", "99999999999999999999", "名额"),
    ("start", "0001-01-01T00:00", "年份"),
    ("start", "9999-12-31T23:59", "年份"),
    ("hours", "nan", "志愿时长"),
    ("hours", "inf", "志愿时长"),
])
def test_odd_activity_fields_are_refused_in_words(organiser, field, value, words):
    form = {"title": "护河志愿活动", "start": "2026-12-01T09:00", field: value}
    resp = organiser.post("/admin/activities/new", form)
    assert resp.status_code == 400 and words in resp.get_data(as_text=True)


@pytest.mark.parametrize("args,words", [
    (["activity", "add", "--title", "x", "--start", "2026-11-28 09:00", "--capacity",
      "99999999999999999999"], "名额应为正整数"),
    (["activity", "add", "--title", "x", "--start", "0001-01-01 00:00"], "年份应在"),
    (["activity", "add", "--title", "x", "--start", "2026-11-28 09:00", "--hours", "nan"],
     "志愿时长应在"),
    (["volunteer-correct", "1", "--hours", "nan", "--reason", "补录"], "志愿时长应在"),
])
def test_the_command_line_refuses_the_same_in_words(settings, rt, args, words):
    result = CliRunner().invoke(cli, args, env={**cli_env(settings),
                                               "BOT_FAKE_NOW": settings.fake_now})
    assert result.exit_code != 0 and words in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_an_hours_correction_of_nan_or_inf_is_refused(organiser, rt, wechat, value):
    activity_id = make_activity(organiser)
    sign_up(wechat, "oMemberA0001", "张三", "13811112222")
    [signup] = service.signup_list(rt.db(), activity_id)
    resp = organiser.post(
        f"/admin/activities/{activity_id}/signups/{signup['id']}/hours",
        {"hours": value, "reason": "补录"}, follow_redirects=True)
    assert "志愿时长应为数字" in resp.get_data(as_text=True)
    with pytest.raises(service.InvalidActivity):
        service.correct_hours(rt.db(), signup["id"], float(value), "补录", "甲", rt.clock.now())
    assert service.get_signup(rt.db(), signup["id"])["hours"] is None
    assert not list(rt.db().query("SELECT * FROM hour_corrections"))


@pytest.mark.parametrize("target", ["/admin/%0d%0aSet-Cookie:%20x=1", "/admin/%0aX", "/admin/%09"])
def test_a_line_break_in_next_goes_to_the_dashboard(app, rt, target):
    add_admin(rt, "王五")
    c = Console(app)
    assert c.login("王五", next_=target).headers["Location"] == "/admin/"
    assert c.client.get(f"/admin/login?next={target}").headers["Location"] == "/admin/"


@pytest.mark.parametrize("path", ["/admin/activities/99999999999999999999",
                                  "/admin/activities/99999999999999999999/edit",
                                  "/admin/knowledge/unanswered/99999999999999999999",
                                  "/admin/audit/?page=99999999999999999999"])
def test_huge_numbers_in_urls_are_not_a_500(console, path):
    assert console.get(path).status_code in (200, 404)


# --- passwords outside the process list ----------------------------------------------------------

def cli_env(settings) -> dict:
    return {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN,
            "WECHAT_API_BASE": settings.wechat_api_base}


def test_admin_add_reads_the_password_from_stdin_or_the_environment(app, rt, settings):
    runner = CliRunner()
    env = cli_env(settings)
    piped = runner.invoke(cli, ["admin", "add", "陈七", "--password-stdin"],
                          input="long-enough-1\n", env=env)
    assert piped.exit_code == 0, piped.output
    from_env = runner.invoke(cli, ["admin", "add", "周八"],
                             env={**env, "BOT_ADMIN_PASSWORD": "long-enough-2"})
    assert from_env.exit_code == 0, from_env.output
    assert Console(app).login("陈七", "long-enough-1").status_code == 302
    assert Console(app).login("周八", "long-enough-2").status_code == 302
    changed = runner.invoke(cli, ["admin", "password", "陈七", "--password-stdin"],
                            input="long-enough-3\n", env=env)
    assert changed.exit_code == 0 and Console(app).login("陈七", "long-enough-3").status_code == 302
    empty = runner.invoke(cli, ["admin", "add", "吴九", "--password-stdin"], input="", env=env)
    assert empty.exit_code != 0 and "标准输入" in empty.output
    assert admins.by_name(rt.db(), "吴九") is None
    assert "BOT_ADMIN_PASSWORD" in runner.invoke(cli, ["admin", "add", "--help"]).output


def test_nothing_here_writes_passwords_to_the_audit_log(app, rt):
    add_admin(rt, "王五")
    Console(app).login("王五", "typed-" + PASSWORD)
    assert all(PASSWORD not in (r["detail"] or "") + r["actor"] for r in audit.recent(rt.db()))
