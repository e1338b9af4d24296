"""The organisers' console (/admin) through Flask's test client on a real SQLite file."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from activities import service
from console.auth import FORGET_FAILURES, FREE_TRIES, MAX_DELAY, failure_delay, hash_password
from storage import admins, audit, deliveries
from storage import knowledge as kb_store

PASSWORD = "correct-horse-1"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def add_admin(rt, name: str, role: str = "admin", password: str = PASSWORD) -> None:
    admins.create(rt.db(), name, hash_password(password), role, rt.clock.now())


def csrf_of(client, path: str = "/admin/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


class Console:
    """A browser stand-in: logs in through the form and posts with the page's CSRF token."""

    def __init__(self, app):
        self.client = app.test_client()
        self.csrf = ""

    def login(self, name: str, password: str = PASSWORD, next_: str = ""):
        token = csrf_of(self.client, "/admin/login" + (f"?next={next_}" if next_ else ""))
        resp = self.client.post("/admin/login" + (f"?next={next_}" if next_ else ""),
                                data={"name": name, "password": password, "csrf": token})
        if resp.status_code == 302:
            self.csrf = csrf_of(self.client, "/admin/")
        return resp

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict | None = None, **kw):
        return self.client.post(path, data={"csrf": self.csrf, **(data or {})}, **kw)


# --- login, logout, sessions --------------------------------------------------------------

def test_login_page_is_chinese_and_has_a_csrf_field(app):
    resp = app.test_client().get("/admin/login")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "登录" in html and 'name="csrf"' in html


def test_login_then_dashboard_then_logout(app, rt):
    add_admin(rt, "王五")
    c = Console(app)
    resp = c.login("王五")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/"
    page = c.get("/admin/").get_data(as_text=True)
    assert "概览" in page and "王五" in page
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    resp = c.post("/admin/logout")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/admin/login")
    assert c.get("/admin/").status_code == 302
    assert [r["action"] for r in audit.recent(rt.db())] == ["退出", "登录"]


def test_login_returns_to_the_page_asked_for_but_never_off_site(app, rt):
    add_admin(rt, "赵六")
    assert Console(app).login("赵六", next_="/admin/audit/").headers["Location"] == "/admin/audit/"
    for evil in ("https://evil.example/", "//evil.example/admin", "/\\evil.example"):
        assert Console(app).login("赵六", next_=evil).headers["Location"] == "/admin/"


@pytest.mark.parametrize("name,password", [("王五", "wrong-password"), ("没有这个人", PASSWORD),
                                           ("", "")])
def test_wrong_credentials_get_one_vague_message(app, rt, name, password):
    add_admin(rt, "王五")
    resp = Console(app).login(name, password)
    assert resp.status_code == 401
    assert "用户名或密码错误" in resp.get_data(as_text=True)


def login_from(app, address: str, name: str, password: str = PASSWORD, client=None):
    """A login attempt from a given client address; returns (status, page text)."""
    c = Console(app)
    if client is not None:
        c.client = client
    token = csrf_of(c.client)
    resp = c.client.post("/admin/login", data={"name": name, "password": password,
                                               "csrf": token},
                         environ_base={"REMOTE_ADDR": address})
    return resp.status_code, resp.get_data(as_text=True)


def test_failures_slow_the_client_down_with_growing_delays(app, rt):
    add_admin(rt, "王五")
    for n in range(FREE_TRIES):
        assert login_from(app, "198.51.100.7", f"猜的名字{n}", "nope-nope")[0] == 401
    waits = []
    for _ in range(3):
        assert login_from(app, "198.51.100.7", "王五", "nope-nope")[0] == 401
        status, page = login_from(app, "198.51.100.7", "王五")  # even the right password waits
        assert status == 429 and "尝试次数过多" in page
        waits.append(int(re.search(r"请 (\d+) 秒后再试", page).group(1)))
        rt.clock.set(rt.clock.now() + timedelta(seconds=waits[-1]))
    assert [w in (d - 1, d) for w, d in zip(waits, (2, 4, 8))] == [True] * 3  # 1 s ticks by
    assert login_from(app, "198.51.100.7", "王五")[0] == 302
    assert login_from(app, "198.51.100.7", "王五", "nope-nope")[0] == 401  # the count restarted
    assert failure_delay(50) == MAX_DELAY


def test_nobody_can_lock_an_account_out(app, rt):
    """Anyone may type the admin's name with wrong passwords: the owner's browser, which logged
    in before, is never kept waiting, and a new browser waits a bounded time, never a lock."""
    add_admin(rt, "王五")
    owner = app.test_client()
    assert login_from(app, "10.0.0.2", "王五", client=owner)[0] == 302
    owner.post("/admin/logout", data={"csrf": csrf_of(owner, "/admin/")})
    for n in range(30):
        login_from(app, f"203.0.113.{n}", "王五", "nope-nope")
    assert login_from(app, "10.0.0.3", "王五")[0] == 429  # a new browser waits …
    assert login_from(app, "10.0.0.2", "王五", client=owner)[0] == 302  # the owner's does not
    for n in range(30):
        login_from(app, f"203.0.113.{n}", "王五", "nope-nope")
    rt.clock.set(rt.clock.now() + MAX_DELAY)  # … and never longer than this
    assert login_from(app, "10.0.0.3", "王五")[0] == 302


def test_a_browser_that_knew_an_old_password_is_slowed_like_anyone(app, rt):
    add_admin(rt, "王五")
    former = app.test_client()
    assert login_from(app, "10.0.0.2", "王五", client=former)[0] == 302
    admins.set_password(rt.db(), "王五", hash_password("a-new-password-9"))
    statuses = [login_from(app, "10.0.0.2", "王五", "guess-guess", client=former)[0]
                for _ in range(FREE_TRIES + 2)]
    assert statuses[-1] == 429
    assert "locked_until" not in admins.all_admins(rt.db())[0]


def test_unknown_names_go_exactly_the_way_of_wrong_passwords(app, rt):
    add_admin(rt, "王五")
    known = [login_from(app, "198.51.100.1", "王五", "nope-nope") for _ in range(FREE_TRIES + 2)]
    unknown = [login_from(app, "198.51.100.2", "没有这个人", "nope-nope")
               for _ in range(FREE_TRIES + 2)]
    assert [s for s, _ in known] == [s for s, _ in unknown] == [401] * (FREE_TRIES + 1) + [429]
    def words(page: str) -> str:
        return re.sub(r"\d+", "N", re.search(r'role="alert">([^<]*)<', page).group(1))

    assert [words(p) for _, p in known] == [words(p) for _, p in unknown]
    rows = {r["key"]: r["failures"] for r in rt.db().query("SELECT * FROM login_throttle")}
    assert rows["name:王五"] == rows["name:没有这个人"] == FREE_TRIES + 1
    failed = [r for r in audit.recent(rt.db(), limit=100) if r["action"] == "登录失败"]
    assert len(failed) == 2 * (FREE_TRIES + 1)


def test_made_up_names_do_not_pile_up_in_the_throttle_table(app, rt):
    for n in range(5):
        login_from(app, "198.51.100.9", f"随便{n}", "nope-nope")
    rt.clock.set(rt.clock.now() + FORGET_FAILURES + MAX_DELAY)
    login_from(app, "198.51.100.10", "又一个", "nope-nope")
    keys = [r["key"] for r in rt.db().query("SELECT key FROM login_throttle")]
    assert sorted(keys) == ["client:198.51.100.10", "name:又一个"]


def test_a_success_resets_the_failure_count(app, rt):
    add_admin(rt, "王五")
    for _ in range(FREE_TRIES):
        login_from(app, "198.51.100.7", "王五", "nope-nope")
    assert login_from(app, "198.51.100.7", "王五")[0] == 302
    for _ in range(FREE_TRIES):
        assert login_from(app, "198.51.100.7", "王五", "nope-nope")[0] == 401


def test_a_cookie_copied_before_logout_stops_working(app, rt):
    add_admin(rt, "王五")
    c = Console(app)
    c.login("王五")
    copied = c.client.get_cookie("session").value
    assert c.post("/admin/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 302
    assert thief.get("/admin/audit/").status_code == 302


def test_logout_ends_only_its_own_session(app, rt):
    add_admin(rt, "王五")
    phone, desk = Console(app), Console(app)
    phone.login("王五")
    desk.login("王五")
    phone.post("/admin/logout")
    assert desk.get("/admin/").status_code == 200
    assert admins.session_count(rt.db(), admins.by_name(rt.db(), "王五")["id"]) == 1


def test_idle_session_expires(console, rt):
    assert console.get("/admin/").status_code == 200
    rt.clock.set(rt.clock.now() + timedelta(minutes=rt.settings.console_idle_minutes + 1))
    resp = console.get("/admin/")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]
    assert "登录已过期" in console.get(resp.headers["Location"]).get_data(as_text=True)


def test_busy_session_still_ends_after_twelve_hours(console, rt):
    for _ in range(13):
        rt.clock.set(rt.clock.now() + timedelta(minutes=59))
        resp = console.get("/admin/")
    assert resp.status_code == 302


def test_changing_the_password_or_removing_the_account_ends_its_sessions(console, rt):
    admin_id = admins.by_name(rt.db(), "管理员甲")["id"]
    admins.set_password(rt.db(), "管理员甲", hash_password("another-pass-2"))
    assert admins.session_count(rt.db(), admin_id) == 0
    assert console.get("/admin/").status_code == 302
    add_admin(rt, "临时")
    c = Console(console.client.application)
    c.login("临时")
    admins.delete(rt.db(), "临时")
    assert c.get("/admin/").status_code == 302


# --- CSRF ------------------------------------------------------------------------------------

def test_login_without_csrf_is_refused(app, rt):
    add_admin(rt, "王五")
    resp = app.test_client().post("/admin/login", data={"name": "王五", "password": PASSWORD})
    assert resp.status_code == 400 and "页面已过期" in resp.get_data(as_text=True)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_posts_without_the_session_token_are_403(console, token):
    data = {} if token is None else {"csrf": token}
    resp = console.client.post("/admin/logout", data=data)
    assert resp.status_code == 403 and "安全校验失败" in resp.get_data(as_text=True)
    assert console.get("/admin/").status_code == 200  # still logged in


def test_json_posts_need_the_csrf_header(console):
    body = {"openid": "sim-csrf-1", "text": "帮助"}
    resp = console.client.post("/admin/simulator/send", json=body)
    assert resp.status_code == 403 and "error" in resp.get_json()
    resp = console.client.post("/admin/simulator/send", json=body,
                               headers={"X-CSRF-Token": console.csrf})
    assert resp.status_code == 200 and "诚城青年助手" in resp.get_json()["reply"]


def test_another_sessions_token_does_not_work(app, rt, console):
    add_admin(rt, "别人")
    other = Console(app)
    other.login("别人")
    resp = console.client.post("/admin/logout", data={"csrf": other.csrf})
    assert resp.status_code == 403


# --- every route is closed without a session -----------------------------------------------

def _sample_path(rule) -> str:
    values = {name: 1 if conv.__class__.__name__ == "IntegerConverter" else "x"
              for name, conv in rule._converters.items()}
    return rule.build(values, append_unknown=False)[1]


def admin_rules(app):
    return [r for r in app.url_map.iter_rules()
            if r.rule.startswith("/admin") and r.endpoint not in ("console.static",
                                                                   "console.login")]


def test_every_admin_route_without_a_session_gets_the_login_page_or_403(app):
    client = app.test_client()
    rules = admin_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        path = _sample_path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            resp = client.open(path, method=method)
            if resp.status_code == 302:
                assert resp.headers["Location"].startswith("/admin/login"), (method, path)
            else:
                assert resp.status_code == 403, (method, path, resp.status_code)


def test_routes_carry_no_member_data(app):
    """Console URLs hold ids of rows, never an openid, a name or a phone."""
    allowed = {"activity_id", "signup_id", "unanswered_id", "entry_id", "batch", "filename",
               "need_id", "project_id", "handoff_id"}
    for rule in admin_rules(app):
        assert set(rule.arguments) <= allowed, rule.rule


def test_organiser_cannot_open_admin_only_pages(organiser, app):
    assert organiser.get("/admin/audit/").status_code == 403
    assert organiser.get("/admin/").status_code == 200
    page = organiser.get("/admin/").get_data(as_text=True)
    assert "操作日志" not in page


def test_each_view_declares_its_role(app):
    """A view without login_required would still be gated, but every view says who may use it."""
    for rule in admin_rules(app):
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_role"), rule.endpoint


def test_console_pages_are_not_cached_or_framed(console):
    resp = console.get("/admin/")
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"


# --- audit log and simulator ----------------------------------------------------------------

def test_audit_page_lists_actions_newest_first(console, rt):
    audit.record(rt.db(), "管理员甲", "编辑条目", "union-tijian", None, rt.clock.now())
    html = console.get("/admin/audit/").get_data(as_text=True)
    assert html.index("编辑条目") < html.rindex("登录")
    assert "编辑条目" in console.get("/admin/audit/?action=编辑条目").get_data(as_text=True)


def test_simulator_talks_through_the_real_webhook(console, rt):
    from storage import messages

    page = console.get("/admin/simulator/chat")
    assert page.status_code == 200 and page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert console.csrf in page.get_data(as_text=True)
    resp = console.client.post("/admin/simulator/send", json={"openid": "sim-org-1", "text": "帮助"},
                               headers={"X-CSRF-Token": console.csrf})
    assert resp.get_json()["status"] == 200
    assert messages.recent(rt.db(), "sim-org-1")[0]["content"] == "帮助"


@pytest.mark.parametrize("openid", ["oRealMember0001", "sim", "sim-", "../x"])
def test_simulator_refuses_real_member_openids(console, openid):
    resp = console.client.post("/admin/simulator/send", json={"openid": openid, "text": "帮助"},
                               headers={"X-CSRF-Token": console.csrf})
    assert resp.status_code == 400
    assert console.get(f"/admin/simulator/inbox?openid={openid}").status_code == 400


# --- the command line ------------------------------------------------------------------------

def test_admin_add_hashes_the_password_and_refuses_duplicates(settings, monkeypatch):
    from bot import cli
    from runtime import Runtime

    monkeypatch.setenv("BOT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    result = runner.invoke(cli, ["admin", "add", "陈七", "--role", "admin", "--password",
                                 "long-enough-1"])
    assert result.exit_code == 0, result.output
    row = admins.by_name(Runtime(settings).db(), "陈七")
    assert row["role"] == "admin" and "long-enough-1" not in row["password_hash"]
    again = runner.invoke(cli, ["admin", "add", "陈七", "--password", "long-enough-1"])
    assert again.exit_code != 0 and "已存在" in again.output
    short = runner.invoke(cli, ["admin", "add", "周八", "--password", "short"])
    assert short.exit_code != 0 and "至少 8 位" in short.output
    prompted = runner.invoke(cli, ["admin", "add", "周八"], input="long-enough-2\nlong-enough-2\n")
    assert prompted.exit_code == 0
    assert admins.by_name(Runtime(settings).db(), "周八")["role"] == "organiser"
    listed = runner.invoke(cli, ["admin", "list"])
    assert "陈七\tadmin" in listed.output and "周八\torganiser" in listed.output


def test_every_admin_command_has_help():
    from bot import cli

    for name, command in cli.commands["admin"].commands.items():
        assert command.help, name


# --- activities -------------------------------------------------------------------------------

ACTIVITY_FORM = {"title": "冬季送温暖志愿服务", "group": "青春志愿服务共同体",
                 "location": "虹口区城管执法局", "start": "2026-12-05T09:00",
                 "end": "2026-12-05T11:00", "deadline": "", "capacity": "1", "hours": "2",
                 "description": "", "status": "open"}


def make_activity(client: Console, **changes) -> int:
    resp = client.post("/admin/activities/new", {**ACTIVITY_FORM, **changes})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def sign_up(wechat, openid: str, name: str, phone: str, keyword: str = "冬季送温暖"):
    wechat.text(openid, f"绑定 {name} 虹口区城管执法局 {phone}")
    return wechat.text(openid, f"报名 {keyword}").text


def test_organiser_publishes_an_activity_and_members_sign_up(organiser, rt, wechat):
    activity_id = make_activity(organiser)
    activity = service.get_activity(rt.db(), activity_id)
    assert activity["status"] == "open" and activity["capacity"] == 1
    assert activity["created_by"] == "组织者乙"
    assert "报名成功" in sign_up(wechat, "oMemberA0001", "张三", "13811112222")
    assert "候补" in sign_up(wechat, "oMemberB0002", "李四", "13933334444")
    page = organiser.get(f"/admin/activities/{activity_id}").get_data(as_text=True)
    assert "张三" in page and "候补第 1 位" in page and 'class="qr-img"' in page
    assert "138****2222" in page and "13811112222" not in page


@pytest.mark.parametrize("changes,words", [
    ({"title": ""}, "活动名称不能为空"),
    ({"start": "2026-11-01T09:00"}, "开始时间已经过去"),
    ({"start": "明天上午"}, "开始时间格式不对"),
    ({"capacity": "十"}, "名额应为数字"),
    ({"end": "2026-12-05T08:00"}, "结束时间必须晚于开始时间"),
])
def test_bad_activity_input_gets_a_clear_chinese_error(organiser, changes, words):
    resp = organiser.post("/admin/activities/new", {**ACTIVITY_FORM, **changes})
    assert resp.status_code == 400 and words in resp.get_data(as_text=True)


def test_promote_by_hand_needs_a_place_or_adds_one(organiser, rt, wechat):
    activity_id = make_activity(organiser)
    sign_up(wechat, "oMemberA0001", "张三", "13811112222")
    sign_up(wechat, "oMemberB0002", "李四", "13933334444")
    waiting = next(s for s in service.signup_list(rt.db(), activity_id)
                   if s["status"] == "waitlisted")
    url = f"/admin/activities/{activity_id}/signups/{waiting['id']}/promote"
    organiser.post(url)
    assert service.get_activity(rt.db(), activity_id)["waitlisted"] == 1  # full: refused
    organiser.post(url, {"add_place": "1"})
    activity = service.get_activity(rt.db(), activity_id)
    assert activity["confirmed"] == 2 and activity["capacity"] == 2
    assert "候补转正" in [r["action"] for r in audit.recent(rt.db())]


def test_edit_open_close_cancel(organiser, rt, wechat):
    activity_id = make_activity(organiser, status="draft")
    assert service.get_activity(rt.db(), activity_id)["status"] == "draft"
    organiser.post(f"/admin/activities/{activity_id}/edit", {**ACTIVITY_FORM, "title": "新名字"})
    assert service.get_activity(rt.db(), activity_id)["title"] == "新名字"
    organiser.post(f"/admin/activities/{activity_id}/status", {"action": "open"})
    assert service.get_activity(rt.db(), activity_id)["checkin_code"]
    sign_up(wechat, "oMemberA0001", "张三", "13811112222", keyword="新名字")
    organiser.post(f"/admin/activities/{activity_id}/status", {"action": "close"})
    assert service.get_activity(rt.db(), activity_id)["status"] == "closed"
    organiser.post(f"/admin/activities/{activity_id}/status",
                   {"action": "cancel", "reason": "天气原因"})
    assert service.get_activity(rt.db(), activity_id)["status"] == "cancelled"
    notice = [d for d in deliveries.for_member(rt.db(), "oMemberA0001")
              if d["title"] == "活动取消通知"]
    assert notice and "天气原因" in notice[0]["text"]
    resp = organiser.post(f"/admin/activities/{activity_id}/status", {"action": "cancel"})
    assert "已经取消过了" in organiser.get(resp.headers["Location"]).get_data(as_text=True)


def test_export_masks_phones_unless_revealed_and_records_the_reveal(organiser, rt, wechat):
    activity_id = make_activity(organiser)
    sign_up(wechat, "oMemberA0001", "张三", "13811112222")
    resp = organiser.post(f"/admin/activities/{activity_id}/export", {"format": "csv"})
    text = resp.get_data().decode("utf-8-sig")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert "张三" in text and "138****2222" in text and "13811112222" not in text
    resp = organiser.post(f"/admin/activities/{activity_id}/export",
                          {"format": "xlsx", "reveal": "1"})
    sheet = load_workbook(io.BytesIO(resp.get_data())).active
    assert "13811112222" in [str(c.value) for row in sheet.iter_rows() for c in row]
    lines = audit.recent(rt.db())
    assert lines[0]["action"] == "导出名单（显示手机号）" and lines[0]["actor"] == "组织者乙"
    assert lines[1]["action"] == "导出名单" and "已隐藏" in lines[1]["detail"]
    assert all("1381111" not in (r["detail"] or "") for r in lines)


def test_exports_require_login(organiser, app):
    activity_id = make_activity(organiser)
    anonymous = app.test_client()
    for fmt in ("csv", "xlsx"):
        resp = anonymous.post(f"/admin/activities/{activity_id}/export", data={"format": fmt})
        assert resp.status_code == 403 and "张三" not in resp.get_data(as_text=True)


# --- knowledge --------------------------------------------------------------------------------

def test_test_box_shows_reply_entry_and_score(organiser):
    page = organiser.post("/admin/knowledge/", {"question": "体检几月"}).get_data(as_text=True)
    assert "有把握回答" in page and "9月" in page and 'id="test-score"' in page


def test_organisers_read_knowledge_but_only_admins_change_it(organiser, console, rt, wechat):
    assert organiser.get("/admin/knowledge/").status_code == 200
    form = {"question": "问题", "answer": "答案", "source": "union2025"}
    assert organiser.post("/admin/knowledge/entries/new", form).status_code == 403
    wechat.text("oMemberA0001", "机关食堂几点开饭")
    row = kb_store.unanswered(rt.db())[0]
    assert organiser.get(f"/admin/knowledge/unanswered/{row['id']}").status_code == 403
    assert console.get(f"/admin/knowledge/unanswered/{row['id']}").status_code == 200


def test_unanswered_question_becomes_an_entry_and_the_bot_answers_it(console, rt, wechat):
    assert "没有找到" in wechat.text("oMemberA0001", "机关食堂几点开饭").text
    row = kb_store.unanswered(rt.db())[0]
    resp = console.post(f"/admin/knowledge/unanswered/{row['id']}/entry", {
        "question": "机关食堂几点开饭", "answer": "午餐11:30至13:00。", "source": "_other",
        "source_other": "局机关后勤通知", "alts": "食堂开饭时间", "keywords": "食堂"})
    assert resp.status_code == 302
    assert kb_store.get_unanswered(rt.db(), row["id"])["status"] == "resolved"
    reply = wechat.text("oMemberA0001", "机关食堂几点开饭").text
    assert "11:30至13:00" in reply and "局机关后勤通知" in reply
    assert audit.recent(rt.db())[0]["action"] == "新建条目"


def test_unanswered_question_becomes_an_alias_of_an_existing_entry(console, rt, wechat):
    question = "年度健康福利几月"
    first = wechat.text("oMemberA0001", question).text
    assert "没有找到" in first
    row = kb_store.unanswered(rt.db())[0]
    page = console.get(f"/admin/knowledge/unanswered/{row['id']}").get_data(as_text=True)
    assert question in page
    entry_id = "union-xm-tijian"
    resp = console.post(f"/admin/knowledge/unanswered/{row['id']}/alias",
                        {"entry_id_other": entry_id})
    assert resp.status_code == 302
    assert "9月" in wechat.text("oMemberA0001", question).text
    assert audit.recent(rt.db())[0]["action"] == "添加别名"


@pytest.mark.parametrize("form,words", [
    ({"question": "", "answer": "答", "source": "union2025"}, "请填写问题"),
    ({"question": "问", "answer": "", "source": "union2025"}, "请填写答案"),
    ({"question": "问", "answer": "答", "source": "_other", "source_other": ""}, "请填写出处"),
    ({"question": "问", "answer": "答", "source": "union2025", "id": "Bad Id!"}, "编号只能用"),
    ({"question": "问", "answer": "答", "source": "union2025", "id": "union-xm-tijian"}, "已被使用"),
])
def test_bad_entries_are_refused_in_chinese(console, form, words):
    resp = console.post("/admin/knowledge/entries/new", form)
    assert resp.status_code == 400 and words in resp.get_data(as_text=True)


def test_edit_and_delete_an_entry(console, rt, wechat):
    entry_id = "union-xm-tijian"
    page = console.get(f"/admin/knowledge/entries/{entry_id}").get_data(as_text=True)
    assert "体检" in page
    console.post(f"/admin/knowledge/entries/{entry_id}", {
        "question": "职工体检什么时候？", "answer": "体检改在10月。", "source": "union2025",
        "alts": "体检几月", "keywords": "体检"})
    assert "10月" in wechat.text("oMemberA0001", "体检几月").text
    console.post(f"/admin/knowledge/entries/{entry_id}/delete")
    assert console.get(f"/admin/knowledge/entries/{entry_id}").status_code == 404
    assert [r["action"] for r in audit.recent(rt.db())][:2] == ["删除条目", "修改条目"]


# --- broadcasts -------------------------------------------------------------------------------

def test_broadcast_preview_then_send_once(organiser, rt, wechat):
    for n in range(3):
        wechat.event(f"oFollower{n:04d}", "subscribe")
    form = {"title": "通知", "text": "周五下午两点开会。", "audience": "all", "when": "now"}
    page = organiser.post("/admin/broadcasts/preview", form).get_data(as_text=True)
    assert "【通知】周五下午两点开会。" in page and '<b id="reach">3</b>' in page
    batch = re.search(r'name="batch" value="([^"]+)"', page).group(1)
    for _ in range(2):  # a double click queues nobody twice
        resp = organiser.post("/admin/broadcasts/send", {**form, "batch": batch})
        assert resp.status_code == 302 and resp.headers["Location"].endswith(batch)
    assert deliveries.progress(rt.db(), batch) == {"pending": 3}
    page = organiser.get(resp.headers["Location"]).get_data(as_text=True)
    assert "待发送" in page and "周五下午两点开会" in page
    assert [r["action"] for r in audit.recent(rt.db())].count("群发通知") == 2


@pytest.mark.parametrize("changes,words", [
    ({"text": ""}, "通知内容不能为空"),
    ({"text": "长" * 601}, "通知内容过长"),
    ({"when": "later", "at": "2026-11-20T09:00"}, "已经过去"),
    ({"audience": "activity", "activity": "999"}, "没有编号为 999 的活动"),
])
def test_bad_broadcasts_are_refused_in_chinese(organiser, changes, words):
    form = {"title": "通知", "text": "内容", "audience": "all", "when": "now", **changes}
    resp = organiser.post("/admin/broadcasts/preview", form)
    assert resp.status_code == 400 and words in resp.get_data(as_text=True)


def test_scheduled_broadcast_waits_for_its_time(organiser, rt, wechat):
    wechat.event("oFollower0001", "subscribe")
    form = {"text": "明早提醒", "audience": "all", "when": "later", "at": "2026-11-22T08:00"}
    page = organiser.post("/admin/broadcasts/preview", form).get_data(as_text=True)
    batch = re.search(r'name="batch" value="([^"]+)"', page).group(1)
    organiser.post("/admin/broadcasts/send", {**form, "batch": batch})
    row = deliveries.batches(rt.db())[0]
    assert row["due_at"] == "2026-11-22T00:00:00Z"
    assert "定时，未到时间" in organiser.get(f"/admin/broadcasts/{batch}").get_data(as_text=True)


# --- privacy: nothing about members in URLs or logs --------------------------------------------

HREF_RE = re.compile(r'(?:href|action|src)="([^"]*)"')


def test_no_member_data_in_any_console_url_or_log(console, rt, wechat, caplog):
    caplog.set_level("DEBUG")
    activity_id = make_activity(console)
    sign_up(wechat, "oSecretMember01", "欧阳娜娜", "13700001111")
    wechat.text("oSecretMember01", "机关食堂几点开饭")
    caplog.clear()
    seen, queue = set(), ["/admin/"]
    pages = 0
    while queue:
        path = queue.pop()
        if path in seen or not path.startswith("/admin") or "/static/" in path:
            continue
        seen.add(path)
        resp = console.get(path)
        if resp.status_code != 200 or "html" not in resp.content_type:
            continue
        pages += 1
        for url in HREF_RE.findall(resp.get_data(as_text=True)):
            for secret in ("oSecretMember01", "欧阳", "13700001111"):
                assert secret not in url, (path, url)
            queue.append(url.split("#")[0])
    assert pages >= 8 and f"/admin/activities/{activity_id}" in seen
    assert kb_store.unanswered(rt.db())
    for record in caplog.records:
        for secret in ("oSecretMember01", "欧阳娜娜", "13700001111"):
            assert secret not in record.getMessage()


# --- documents ----------------------------------------------------------------------------------

NOTICE = ("# 关于举办2026年城管青年读书会的通知\n\n沪城管团〔2026〕7号\n\n"
          "2026年城管青年读书会定于12月5日在静安区图书馆举办，共安排120个名额，"
          "由各区局团组织推荐青年参加。")


def test_uploaded_document_is_ingested_and_answers_questions(console, rt, wechat):
    question = "城管青年读书会在哪里举办"
    assert wechat.text("oMemberA0001", question).text.startswith("没有找到")
    resp = console.post("/admin/knowledge/upload",
                        {"file": (io.BytesIO(NOTICE.encode()), "读书会通知.md")},
                        content_type="multipart/form-data")
    assert resp.status_code == 302
    page = console.get("/admin/knowledge/").get_data(as_text=True)
    assert "关于举办2026年城管青年读书会的通知" in page and "沪城管团〔2026〕7号" in page
    reply = wechat.text("oMemberA0002", question).text
    assert "静安区图书馆" in reply and "沪城管团〔2026〕7号" in reply
    assert audit.recent(rt.db())[0]["action"] == "导入文档"


@pytest.mark.parametrize("name,body,words", [
    ("x.exe", b"MZ", "不支持的文件类型"),
    ("x.pdf", b"%PDF-1.4", "无法读取 PDF 文件"),
    ("empty.txt", b"\n\n", "文件是空的"),
    ("..", b"abc", "不支持的文件类型"),
])
def test_bad_uploads_get_a_chinese_reason(console, name, body, words):
    resp = console.post("/admin/knowledge/upload", {"file": (io.BytesIO(body), name)},
                        content_type="multipart/form-data")
    assert resp.status_code == 302
    assert words in console.get(resp.headers["Location"]).get_data(as_text=True)


def test_uploads_larger_than_the_webhook_limit_are_accepted(console, rt):
    body = (NOTICE + "\n\n" + "各区局团组织要认真组织，确保活动安全有序。" * 4000).encode()
    assert len(body) > rt.settings.max_body_bytes
    resp = console.post("/admin/knowledge/upload", {"file": (io.BytesIO(body), "长通知.txt")},
                        content_type="multipart/form-data")
    assert resp.status_code == 302
    assert kb_store.documents(rt.db())[0]["passages"] > 10
