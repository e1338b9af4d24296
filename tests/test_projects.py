"""项目化运作: the plan's project table as records, projects for a new year, activities linked
to a project, progress and the flag for a quarter come with no activity, the chat's answer."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from activities import service
from alliance import projects as alliance_projects
from knowledge.data import load_alliance
from storage import projects as store
from tests.test_needs import bind


def project_id(db, name: str, year: int = 2025) -> int:
    return db.execute("SELECT id FROM projects WHERE name = ? AND year = ?",
                      [name, year]).fetchone()[0]


def test_the_2025_table_is_seeded_once_from_the_alliance_data(db):
    expected = {(g["key"], p["name"], p["type"], ",".join(map(str, p["quarters"])))
                for g in load_alliance()["groups"] for p in g["projects"]}
    rows = {(p["grp"], p["name"], p["type"], p["quarters"]) for p in store.for_year(db, 2025)}
    assert rows == expected and len(rows) == 10
    assert store.seed_from_alliance(db) == 0  # running it again adds nothing


def test_projects_page_lists_each_group_and_flags_quarters_come_without_activity(organiser):
    html = organiser.get("/admin/projects/?year=2025").get_data(as_text=True)
    assert "实施青年实干家计划" in html and "组建进博会青年突击队" in html
    assert html.count("季度已到，尚无活动") == 10  # it is late 2026: every 2025 quarter has come
    assert "10 个项目的季度已到" in html


def test_flag_follows_the_quarter_and_the_activities():
    p = {"year": 2026, "quarters": "2,3", "activities": 0}
    assert alliance_projects.flag(p, datetime(2026, 3, 31)).state == "waiting"
    assert alliance_projects.flag(p, datetime(2026, 4, 1)).state == "due"
    assert alliance_projects.flag({**p, "activities": 1}, datetime(2026, 8, 1)).state == "running"
    assert alliance_projects.flag({**p, "activities": 1}, datetime(2026, 10, 1)).state == "done"


def test_an_activity_linked_in_the_form_counts_for_its_project(organiser, db, rt, wechat):
    pid = project_id(db, "举办执法案例研讨活动")
    start = (rt.clock.now() + timedelta(days=3)).astimezone(rt.settings.tz)
    html = organiser.get("/admin/activities/new").get_data(as_text=True)
    assert f'<option value="{pid}"' in html and "2025 · 青春法治专研 · 举办执法案例研讨活动" in html
    resp = organiser.post("/admin/activities/new", {
        "title": "执法案例研讨会", "start": start.strftime("%Y-%m-%dT%H:%M"), "hours": "2",
        "location": "虹口区城管执法局", "project": str(pid), "status": "open"})
    assert resp.status_code == 302
    activity = service.list_activities(db)[-1]
    assert activity["project_id"] == pid
    # a member signs up and checks in: the project shows one participant and two hours
    bind(wechat, "oProjMember01")
    service.sign_up(db, activity["id"], "oProjMember01", rt.clock.now())
    service.check_in(db, "oProjMember01", activity["checkin_code"], start + timedelta(minutes=5),
                     rt.settings.tz)
    [row] = [p for p in store.for_year(db, 2025) if p["id"] == pid]
    assert (row["activities"], row["participants"], row["hours"]) == (1, 1, 2)
    html = organiser.get("/admin/projects/?year=2025").get_data(as_text=True)
    assert html.count("季度已到，尚无活动") == 9
    detail = organiser.get(f"/admin/projects/{pid}").get_data(as_text=True)
    assert "执法案例研讨会" in detail and "1 人次，志愿时长 2 小时" in detail
    # the edit form keeps the link, and it can be removed
    edit = organiser.get(f"/admin/activities/{activity['id']}/edit").get_data(as_text=True)
    assert f'<option value="{pid}" selected' in edit
    organiser.post(f"/admin/activities/{activity['id']}/edit", {
        "title": "执法案例研讨会", "start": start.strftime("%Y-%m-%dT%H:%M"), "hours": "2",
        "project": ""})
    assert service.get_activity(db, activity["id"])["project_id"] is None


def test_an_unknown_project_in_the_activity_form_is_refused(organiser, db, rt):
    start = (rt.clock.now() + timedelta(days=3)).astimezone(rt.settings.tz)
    resp = organiser.post("/admin/activities/new", {
        "title": "研讨会", "start": start.strftime("%Y-%m-%dT%H:%M"), "project": "9999"})
    assert resp.status_code == 400 and "联盟项目不存在" in resp.get_data(as_text=True)
    assert service.list_activities(db) == []


def test_organisers_add_projects_for_a_new_year(organiser, db):
    resp = organiser.post("/admin/projects/new", {
        "year": "2026", "grp": "zhiyuan", "name": "组织爱心暑托班志愿服务", "type": "规定项目",
        "quarters": ["3"]})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("year=2026")
    [p] = store.for_year(db, 2026)
    assert (p["grp"], p["name"], p["type"], p["quarters"]) == \
        ("zhiyuan", "组织爱心暑托班志愿服务", "规定项目", "3")
    html = organiser.get("/admin/projects/?year=2026").get_data(as_text=True)
    assert "组织爱心暑托班志愿服务" in html and "季度已到，尚无活动" in html


@pytest.mark.parametrize("form,words", [
    ({"year": "2026", "grp": "zhiyuan", "name": "实施青年实干家计划", "type": "规定项目"},
     "至少选择一个季度"),
    ({"year": "2026", "grp": "nope", "name": "某项目", "type": "规定项目", "quarters": ["1"]},
     "请选择共同体"),
    ({"year": "26", "grp": "zhiyuan", "name": "某项目", "type": "规定项目", "quarters": ["1"]},
     "四位数字年份"),
    ({"year": "2025", "grp": "fazhi", "name": "实施青年实干家计划", "type": "规定项目",
      "quarters": ["2"]}, "已有名为"),
])
def test_bad_project_input_is_refused(organiser, db, form, words):
    before = db.execute("SELECT count(*) FROM projects").fetchone()[0]
    resp = organiser.post("/admin/projects/new", form)
    assert resp.status_code == 400 and words in resp.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM projects").fetchone()[0] == before


def test_members_ask_about_this_quarters_projects_from_the_records(wechat, organiser):
    # late 2026, no 2026 projects yet: the 2025 table answers, and says so
    reply = wechat.text("oAskQuarter01", "这个季度有什么项目").text
    assert "2026年项目尚未录入" in reply and "组建进博会青年突击队" in reply
    assert "举办长三角执法协作论坛" not in reply  # a third-quarter project
    organiser.post("/admin/projects/new", {"year": "2026", "grp": "baozhang",
                                           "name": "进博会青年突击队保障", "type": "规定项目",
                                           "quarters": ["4"]})
    reply = wechat.text("oAskQuarter01", "本季度联盟有哪些项目").text
    assert reply.startswith("2026年四季度的联盟项目") and "进博会青年突击队保障" in reply
    reply = wechat.text("oAskQuarter01", "三季度志愿组有什么项目").text
    assert reply == "2026年三季度“青春志愿服务”共同体没有安排项目。"
