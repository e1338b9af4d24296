"""三级: a console account limited to a 共同体 or a unit sees, exports and broadcasts only within
its scope; members' personal data never leaves it. Admins and unscoped organisers see all."""
from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from click.testing import CliRunner

from activities import service as svc
from bot import cli
from console.auth import hash_password
from storage import admins, deliveries
from tests.conftest import TOKEN
from tests.test_console import PASSWORD, Console, add_admin

# (openid, name, unit, phone): 虹口 and 徐汇 are in 青春法治专研 (fazhi); 静安 is in 青春社区治理.
HONGKOU = ("oScopeHongkou01", "虹口小李", "虹口区城管执法局执法一中队", "13900000002")
XUHUI = ("oScopeXuhui0002", "徐汇小王", "徐汇区城管执法局", "13900000001")
JINGAN = ("oScopeJingan003", "静安小赵", "静安区城管执法局", "13900000003")
EVERYONE = (HONGKOU, XUHUI, JINGAN)
SCOPES = {  # scope -> (members inside, members outside)
    "group:fazhi": ((HONGKOU, XUHUI), (JINGAN,)),
    "unit:虹口": ((HONGKOU,), (XUHUI, JINGAN)),
}


def env(settings) -> dict:
    return {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN,
            "BOT_ADMIN_PASSWORD": PASSWORD}


# --- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("given, stored, label", [
    ("group:fazhi", "group:fazhi", "青春法治专研共同体"),
    ("group:青春法治专研", "group:fazhi", "青春法治专研共同体"),
    ("unit:虹口", "unit:虹口区城管执法局团组织", "虹口区城管执法局"),
    ("unit:徐汇区城管执法部门团组织", "unit:徐汇区城管执法部门团组织", "徐汇区城管执法部门"),
])
def test_admin_add_with_a_scope_stores_it_and_list_shows_it(settings, rt, given, stored, label):
    result = CliRunner().invoke(cli, ["admin", "add", "区组织者", "--role", "organiser",
                                      "--scope", given], env=env(settings))
    assert result.exit_code == 0, result.output
    assert label in result.output
    assert admins.by_name(rt.db(), "区组织者")["scope"] == stored
    listed = CliRunner().invoke(cli, ["admin", "list"], env=env(settings)).output
    assert f"区组织者\torganiser\t{stored}（{label}）" in listed


@pytest.mark.parametrize("given, words", [
    ("group:huoxing", "没有代号为“huoxing”的共同体。可选：fazhi（青春法治专研）"),
    ("unit:火星区", "联盟里没有单位“火星区”。可用全称或简称：虹口"),
    ("unit:", "看不懂范围“unit:”"),
    ("虹口", "看不懂范围“虹口”"),
])
def test_admin_add_with_a_bad_scope_is_refused_clearly_and_creates_nothing(settings, rt, given,
                                                                          words):
    result = CliRunner().invoke(cli, ["admin", "add", "区组织者", "--role", "organiser",
                                      "--scope", given], env=env(settings))
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output
    assert admins.by_name(rt.db(), "区组织者") is None


def test_an_admin_cannot_be_scoped(settings, rt):
    result = CliRunner().invoke(cli, ["admin", "add", "管理员丙", "--role", "admin",
                                      "--scope", "group:fazhi"], env=env(settings))
    assert result.exit_code != 0 and "只用于 organiser" in result.output
    assert admins.by_name(rt.db(), "管理员丙") is None


def test_admin_scope_changes_and_lifts_the_limit(settings, rt):
    add_admin(rt, "区组织者", "organiser")
    run = CliRunner().invoke
    assert run(cli, ["admin", "scope", "区组织者", "--scope", "unit:静安"],
               env=env(settings)).exit_code == 0
    assert admins.by_name(rt.db(), "区组织者")["scope"] == "unit:静安区城管执法局团组织"
    bad = run(cli, ["admin", "scope", "区组织者", "--scope", "group:nope"], env=env(settings))
    assert bad.exit_code != 0 and "没有代号为“nope”的共同体" in bad.output
    assert admins.by_name(rt.db(), "区组织者")["scope"] == "unit:静安区城管执法局团组织"
    assert run(cli, ["admin", "scope", "区组织者", "--scope", "all"],
               env=env(settings)).exit_code == 0
    assert admins.by_name(rt.db(), "区组织者")["scope"] is None
    missing = run(cli, ["admin", "scope", "没这人", "--scope", "all"], env=env(settings))
    assert missing.exit_code != 0 and "没有账号 没这人" in missing.output


# --- the console --------------------------------------------------------------------------

@pytest.fixture
def world(wechat, rt):
    """Three members (profile, a need, a conversation with a person) and an activity in each of
    two 共同体 with sign-ups from all of them."""
    for openid, name, unit, phone in EVERYONE:
        assert wechat.text(openid, f"绑定 {name} {unit} {phone}").text.startswith("已登记")
        wechat.text(openid, f"提需求 {name}希望组织一次执法观摩")
        wechat.text(openid, "人工")
        wechat.text(openid, f"{name}的问题：宿舍热水器坏了")
    db, now = rt.db(), rt.clock.now()
    start = now + timedelta(days=7)
    ids = {}
    for key, group in (("fazhi", "青春法治专研共同体"), ("shequ", "青春社区治理共同体")):
        ids[key] = svc.create_activity(db, title=f"{group}观摩", now=now, start=start,
                                       end=start + timedelta(hours=2), group=group,
                                       status="open", created_by="test")
        for openid, *_ in EVERYONE:
            svc.sign_up(db, ids[key], openid, now)
    return ids


def scoped(app, rt, scope: str) -> Console:
    admins.create(rt.db(), "区组织者", hash_password(PASSWORD), "organiser", rt.clock.now(),
                  scope)
    c = Console(app)
    assert c.login("区组织者").status_code == 302
    return c


def leaks(text: str, outside) -> list[str]:
    return [v for m in outside for v in (m[0], m[1], m[3]) if v in text]


def fill(rule: str, arg: str, value) -> str:
    return re.sub(r"<(?:\w+:)?" + arg + ">", str(value), rule)


def routes(app, db) -> list[str]:
    values = {
        "activity_id": [r[0] for r in db.execute("SELECT id FROM activities")],
        "need_id": [r[0] for r in db.execute("SELECT id FROM needs")],
        "project_id": [r[0] for r in db.execute("SELECT id FROM projects")],
        "handoff_id": [r[0] for r in db.execute("SELECT id FROM handoffs")],
        "batch": [r[0] for r in db.execute("SELECT DISTINCT batch FROM deliveries "
                                           "WHERE batch IS NOT NULL")],
        "entry_id": ["alliance-groups"],
        "unanswered_id": [r[0] for r in db.execute("SELECT id FROM unanswered")],
    }
    out = []
    for rule in app.url_map.iter_rules():
        if (not rule.rule.startswith("/admin") or "GET" not in rule.methods
                or rule.endpoint == "console.static"):
            continue
        args = sorted(rule.arguments)
        assert len(args) <= 1 and all(a in values for a in args), f"fill in {rule.rule}"
        out += [fill(rule.rule, args[0], v) for v in values[args[0]]] if args else [rule.rule]
    return out


def export_text(resp) -> str:
    """A CSV, XLSX or DOCX download as text (the XML parts of the Office files)."""
    data = resp.get_data()
    if data[:2] != b"PK":
        return data.decode("utf-8-sig")
    if "spreadsheet" in resp.mimetype:
        book = load_workbook(io.BytesIO(data))
        return "\n".join(str(v) for sheet in book for row in sheet.iter_rows(values_only=True)
                         for v in row if v is not None)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist()
                       if n.endswith(".xml"))


@pytest.mark.parametrize("scope", list(SCOPES))
def test_a_scoped_organiser_sees_and_exports_only_its_scope(app, rt, world, scope):
    inside, outside = SCOPES[scope]
    c = scoped(app, rt, scope)
    db = rt.db()
    pages = routes(app, db)
    assert len(pages) > 20
    seen = ""
    for path in pages:
        resp = c.get(path)
        assert resp.status_code in (200, 302, 400, 403, 404), (path, resp.status_code)
        text = resp.get_data(as_text=True) if resp.mimetype.startswith("text") else ""
        assert not leaks(text, outside), (path, leaks(text, outside))
        seen += text
    for openid, name, *_ in inside:  # what is in scope is still shown
        assert name in seen
    label = "青春法治专研共同体" if scope.startswith("group") else "虹口区城管执法局"
    assert f"范围：{label}" in c.get("/admin/").get_data(as_text=True)
    # detail pages of objects outside the scope are 404, inside 200
    out_ids = [m[0] for m in outside]
    for table, url in (("needs", "/admin/needs/{}"), ("handoffs", "/admin/inbox/{}")):
        for row in db.execute(f"SELECT id, openid FROM {table}"):
            code = c.get(url.format(row[0])).status_code
            assert code == (404 if row[1] in out_ids else 200), (table, row)
    assert c.get(f"/admin/activities/{world['shequ']}").status_code == 404
    assert c.get(f"/admin/activities/{world['shequ']}/edit").status_code == 404
    assert c.get(f"/admin/activities/{world['fazhi']}").status_code == 200
    shequ = db.execute("SELECT id FROM projects WHERE grp = 'shequ' LIMIT 1").fetchone()[0]
    fazhi = db.execute("SELECT id FROM projects WHERE grp = 'fazhi' LIMIT 1").fetchone()[0]
    assert c.get(f"/admin/projects/{shequ}").status_code == 404
    assert c.get(f"/admin/projects/{fazhi}").status_code == 200
    # exports: the sign-up list (both formats, phones revealed too), needs, the summary
    for fmt in ("csv", "xlsx"):
        for reveal in ("0", "1"):
            resp = c.post(f"/admin/activities/{world['fazhi']}/export",
                          {"format": fmt, "reveal": reveal})
            assert resp.status_code == 200
            text = export_text(resp)
            assert not leaks(text, outside) and all(m[1] in text for m in inside)
        assert c.post(f"/admin/activities/{world['shequ']}/export",
                      {"format": fmt}).status_code == 404
    text = export_text(c.post("/admin/needs/export"))
    assert not leaks(text, outside) and all(m[1] in text for m in inside)
    assert all(m[2] not in text for m in outside)
    for fmt in ("docx", "xlsx"):
        resp = c.post("/admin/projects/summary", {"format": fmt, "year": "2025"})
        assert resp.status_code == 200 and not leaks(export_text(resp), outside)
    assert c.post("/admin/projects/summary",
                  {"format": "docx", "year": "2025", "grp": "shequ"}).status_code == 403


@pytest.mark.parametrize("scope", list(SCOPES))
def test_a_scoped_organiser_broadcasts_only_to_members_in_scope(app, rt, world, scope):
    inside, outside = SCOPES[scope]
    c = scoped(app, rt, scope)
    batch = "b20261130-0900-abcd"
    resp = c.post("/admin/broadcasts/send", {"text": "明早集合", "audience": "all",
                                             "when": "now", "batch": batch})
    assert resp.status_code == 302
    got = {r[0] for r in rt.db().execute("SELECT openid FROM deliveries WHERE batch = ?",
                                         [batch])}
    assert got == {m[0] for m in inside}
    # an activity's sign-ups, also only those inside
    batch2 = "b20261130-0901-abcd"
    c.post("/admin/broadcasts/send", {"text": "活动提醒", "audience": "activity",
                                      "activity": str(world["fazhi"]), "when": "now",
                                      "batch": batch2})
    got = {r[0] for r in rt.db().execute("SELECT openid FROM deliveries WHERE batch = ?",
                                         [batch2])}
    assert got == {m[0] for m in inside}
    # a 共同体 or an activity outside the scope is refused, and nothing is queued
    before = deliveries.progress(rt.db())
    for form in ({"audience": "group", "group": "青春社区治理"},
                 {"audience": "activity", "activity": str(world["shequ"])}):
        resp = c.post("/admin/broadcasts/send", {"text": "越界", "when": "now",
                                                 "batch": "b20261130-0902-abcd", **form})
        assert resp.status_code == 400
    assert deliveries.progress(rt.db()) == before


def test_admins_and_unscoped_organisers_see_everyone(app, rt, world, console, organiser):
    for c in (console, organiser):
        page = c.get(f"/admin/activities/{world['fazhi']}").get_data(as_text=True)
        assert all(m[1] in page for m in EVERYONE)
        inbox = c.get("/admin/inbox/").get_data(as_text=True)
        assert all(m[1] in inbox for m in EVERYONE)
        assert c.get(f"/admin/activities/{world['shequ']}").status_code == 200


def test_a_scoped_organiser_cannot_create_an_activity_outside_its_scope(app, rt, world):
    c = scoped(app, rt, "group:fazhi")
    resp = c.post("/admin/activities/new", {"title": "越界活动", "group": "青春社区治理共同体",
                                            "start": "2027-01-05T09:00", "status": "open"})
    assert resp.status_code == 400 and "只管理青春法治专研共同体的活动" in resp.get_data(as_text=True)
    assert not list(rt.db().query("SELECT id FROM activities WHERE title = '越界活动'"))
