"""评议激励: the November summary (Word and Excel) checked against the activities it came from,
the CLI and console button that produce it, and the 1 November reminder to organisers."""
from __future__ import annotations

from datetime import datetime, timedelta
from io import BytesIO

import pytest
from click.testing import CliRunner
from docx import Document
from docx.text.paragraph import Paragraph
from openpyxl import load_workbook

from activities import service
from alliance import needs as need_service
from alliance import summary
from alliance.reminders import plan_summary_due, summary_key
from bot import cli
from scheduler import jobs
from storage import deliveries, members
from tests.conftest import dispatch_all
from tests.test_console import Console, add_admin
from tests.test_needs import bind


def local(rt, text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=rt.settings.tz)


def project_id(db, name: str) -> int:
    return db.execute("SELECT id FROM projects WHERE name = ? AND year = 2025",
                      [name]).fetchone()[0]


@pytest.fixture
def year_2025(rt, db, wechat):
    """A small 2025: activities in and out of their projects' quarters, sign-ups that checked
    in (or not), a cancelled activity, and needs raised and adopted."""
    people = {"oSumZhang0001": ("张三", "虹口区城管执法局"), "oSumLiSi00002": ("李四", "徐汇区城管执法局"),
              "oSumWangWu003": ("王五", "金山区城管执法局"), "oSumZhao00004": ("赵六", "奉贤区城管执法局"),
              "oSumQian00005": ("钱七", "杨浦区城管执法局")}
    for openid, (name, unit) in people.items():
        bind(wechat, openid, unit, name)

    def held(title, when, *, project=None, group=None, hours=2.0, place="虹口区城管执法局",
             attend=(), absent=()):
        start = local(rt, when)
        aid = service.create_activity(db, title=title, now=start - timedelta(days=10),
                                      start=start, end=start + timedelta(hours=3), hours=hours,
                                      location=place, group=group,
                                      project=project_id(db, project) if project else None)
        code = service.get_activity(db, aid)["checkin_code"]
        for openid in (*attend, *absent):
            service.sign_up(db, aid, openid, start - timedelta(days=5))
        for openid in attend:
            service.check_in(db, openid, code, start + timedelta(minutes=10), rt.settings.tz)
        return aid

    held("执法案例研讨会", "2025-03-15 09:00", project="举办执法案例研讨活动",
         attend=("oSumZhang0001", "oSumLiSi00002"), absent=("oSumWangWu003",))
    held("青年实干家交流会", "2025-10-10 14:00", project="实施青年实干家计划", hours=1.5,
         place="徐汇区城管执法局", attend=("oSumZhang0001",))
    held("大学生暑期社会实践", "2025-07-20 09:00", project="组织大学生暑期社会实践活动", hours=4,
         place="奉贤区南桥镇", attend=("oSumZhao00004", "oSumQian00005"))
    held("爱心暑托班志愿服务", "2025-08-02 09:00", group="青春志愿服务共同体", hours=3,
         place="杨浦区市民驿站", attend=("oSumQian00005",))
    cancelled = held("取消的研讨会", "2025-04-10 09:00", project="实施青年实干家计划",
                     attend=("oSumLiSi00002",))
    service.cancel_activity(db, cancelled, local(rt, "2025-04-09 09:00"), rt.settings.tz)
    raised = need_service.raise_need(db, "oSumZhang0001", "虹口区城管执法局",
                                     "=希望组织无人机执法观摩", local(rt, "2025-05-01 10:00"))
    need_service.raise_need(db, "oSumLiSi00002", "徐汇区城管执法局", "希望多开展案例研讨",
                            local(rt, "2025-05-02 10:00"))
    need_service.adopt(db, raised.need["id"], mode="directed", project_name="无人机执法观摩",
                       quarter=3, year=2025, actor="组织者", now=local(rt, "2025-05-03 10:00"),
                       unit="徐汇区城管执法部门团组织")
    return people


def docx_tables(path_or_bytes) -> dict[tuple[str, str], list[list[str]]]:
    """(group heading, first header cell) -> body rows, walking the document in order."""
    out, group = {}, "总览"
    for block in Document(path_or_bytes).iter_inner_content():
        if isinstance(block, Paragraph):
            if block.style.name == "Heading 1":
                group = block.text.split("、", 1)[-1]
        else:
            rows = [[c.text for c in r.cells] for r in block.rows]
            out[(group, rows[0][0])] = rows[1:]
    return out


def test_the_word_summary_matches_the_activities(rt, db, year_2025, tmp_path):
    data = summary.build(db, 2025, rt.clock.now(), rt.settings.tz)
    path = summary.to_docx(data, 2025, tmp_path / "s.docx")
    t = docx_tables(str(path))
    fazhi = "青春法治专研共同体"
    assert t[(fazhi, "日期")] == [
        ["2025-03-15", "执法案例研讨会", "虹口区城管执法局", "举办执法案例研讨活动", "2", "4"],
        ["2025-10-10", "青年实干家交流会", "徐汇区城管执法局", "实施青年实干家计划", "1", "1.5"]]
    assert t[(fazhi, "项目")] == [
        ["实施青年实干家计划", "规定项目", "二季度、三季度", "1", "否（未在计划季度）"],
        ["举办执法案例研讨活动", "自选项目", "一季度", "1", "是"],
        ["无人机执法观摩", "需求项目", "三季度", "0", "否（未开展）"]]
    assert t[(fazhi, "单位")] == [["虹口区城管执法局", "1", "2", "3.5"],
                                  ["徐汇区城管执法局", "1", "1", "2"]]
    assert t[(fazhi, "季度")] == [["一季度", "1", "1", "1", "2", "4"],
                                  ["二季度", "1", "0", "0", "0", "0"],
                                  ["三季度", "2", "0", "0", "0", "0"],
                                  ["四季度", "0", "0", "1", "1", "1.5"],
                                  ["合计", "3", "1", "2", "3", "5.5"]]
    assert [r[1:4] for r in t[(fazhi, "编号")]] == [
        ["=希望组织无人机执法观摩", "虹口区城管执法局", "已揭榜"],
        ["希望多开展案例研讨", "徐汇区城管执法局", "新提交"]]
    zhiyuan = "青春志愿服务共同体"
    assert [r[1] for r in t[(zhiyuan, "日期")]] == ["大学生暑期社会实践", "爱心暑托班志愿服务"]
    assert t[(zhiyuan, "单位")] == [["杨浦区城管执法局", "1", "2", "7"],
                                    ["奉贤区城管执法局", "1", "1", "4"]]
    overview = {r[0]: r[1:] for r in t[("总览", "共同体")]}
    assert overview[fazhi] == ["3", "1", "2", "3", "2", "5.5", "2", "1"]
    assert overview[zhiyuan] == ["2", "1", "2", "3", "2", "11", "0", "0"]
    assert overview["合计"] == ["11", "2", "4", "6", "4", "16.5", "2", "1"]
    assert "取消的研讨会" not in str(t)
    assert ("青春执法创新共同体", "日期") not in t  # a group with no activity says 无


def test_the_excel_summary_has_the_same_rows_and_is_formula_safe(rt, db, year_2025, tmp_path):
    data = summary.build(db, 2025, rt.clock.now(), rt.settings.tz)
    book = load_workbook(summary.to_xlsx(data, 2025, tmp_path / "s.xlsx"))
    assert book.sheetnames == ["总览", "项目", "季度", "活动", "参与单位", "需求"]
    acts = [list(r) for r in book["活动"].iter_rows(min_row=3, values_only=True)]
    assert acts[0] == ["青春法治专研共同体", "2025-03-15", "执法案例研讨会", "虹口区城管执法局",
                       "举办执法案例研讨活动", 2, "4"]
    assert [r[2] for r in acts] == ["执法案例研讨会", "青年实干家交流会", "大学生暑期社会实践",
                                    "爱心暑托班志愿服务"]
    need_cells = [r[2] for r in book["需求"].iter_rows(min_row=3, values_only=True)]
    assert "'=希望组织无人机执法观摩" in need_cells  # text, never a formula
    assert all(c.data_type != "f" for row in book["需求"].iter_rows() for c in row)


def test_one_group_only(rt, db, year_2025, tmp_path):
    data = summary.build(db, 2025, rt.clock.now(), rt.settings.tz, "zhiyuan")
    assert [s.group.key for s in data] == ["zhiyuan"]
    t = docx_tables(str(summary.to_docx(data, 2025, tmp_path / "z.docx", group_key="zhiyuan")))
    assert ("总览", "共同体") not in t and ("青春志愿服务共同体", "日期") in t


def test_cli_writes_the_file_and_refuses_an_unknown_group(settings, rt, db, year_2025, tmp_path):
    env = {"BOT_DATA_DIR": str(settings.data_dir), "BOT_FAKE_NOW": settings.fake_now}
    out = tmp_path / "汇总.xlsx"
    result = CliRunner().invoke(cli, ["summary", "--year", "2025", "--group", "志愿组",
                                      "--format", "xlsx", "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "青春志愿服务共同体" in result.output
    rows = list(load_workbook(out)["活动"].iter_rows(min_row=3, values_only=True))
    assert [r[2] for r in rows] == ["大学生暑期社会实践", "爱心暑托班志愿服务"]
    bad = CliRunner().invoke(cli, ["summary", "--year", "2025", "--group", "没有这个组"], env=env)
    assert bad.exit_code != 0 and "没有这个共同体" in bad.output and "fazhi" in bad.output


def test_the_console_button_downloads_the_summary(app, rt, db, year_2025):
    add_admin(rt, "组织者乙", "organiser")
    c = Console(app)
    c.login("组织者乙")
    assert "生成2025年汇总" in c.get("/admin/projects/?year=2025").get_data(as_text=True)
    resp = c.post("/admin/projects/summary", {"year": "2025", "format": "docx", "grp": ""})
    assert resp.status_code == 200
    assert "attachment" in resp.headers["Content-Disposition"]
    t = docx_tables(BytesIO(resp.data))
    assert t[("青春法治专研共同体", "日期")][0][1] == "执法案例研讨会"
    assert c.post("/admin/projects/summary", {"year": "2025", "format": "pdf"}).status_code == 400


# --- the 1 November reminder ----------------------------------------------------------------

def test_organisers_are_reminded_on_1_november(rt, db, wechat, fake_api):
    bind(wechat, "oOrgJingan001", "静安区城管执法局", "周八")
    bind(wechat, "oOrgOutside01", "市局机关", "吴九")
    bind(wechat, "oMemberOnly01", "静安区城管执法局", "郑十")
    members.set_role(db, "oOrgJingan001", "organiser")
    members.set_role(db, "oOrgOutside01", "organiser")
    rt.clock.set(local(rt, "2026-10-31 23:00"))
    assert jobs.plan_all(rt).get("summary_due_added") == 0
    rt.clock.set(local(rt, "2026-11-01 08:00"))
    assert jobs.plan_all(rt)["summary_due_added"] == 1
    assert plan_summary_due(rt)["summary_due_added"] == 0  # planned once
    row = deliveries.get(db, summary_key(2026, "shequ", "oOrgJingan001"))
    assert row["due_at"] == "2026-11-01T01:00:00Z" and row["expires_at"] == "2026-11-30T16:00:00Z"
    dispatch_all(rt)
    assert fake_api.inbox("oOrgJingan001") == []  # not before 09:00
    rt.clock.set(local(rt, "2026-11-01 09:01"))
    dispatch_all(rt)
    [msg] = fake_api.inbox("oOrgJingan001")
    assert "11月30日前" in msg["content"] and "青春社区治理" in msg["content"]
    assert fake_api.inbox("oMemberOnly01") == [] and fake_api.inbox("oOrgOutside01") == []


def test_a_project_whose_quarter_is_still_running_is_not_called_missed(rt, db, year_2025):
    data = summary.build(db, 2025, local(rt, "2025-11-20 10:00"), rt.settings.tz, "baozhang")
    ran = {p["name"]: p["ran"] for p in data[0].projects}
    assert ran == {"组建进博会青年突击队": "季度进行中", "举办长三角执法协作论坛": "否（未开展）"}
    later = summary.build(db, 2025, local(rt, "2025-03-01 10:00"), rt.settings.tz, "zhiyuan")
    assert {p["ran"] for p in later[0].projects} == {"季度未到"}
    assert later[0].activities == []  # July's activities had not happened by March


def test_control_characters_in_a_title_do_not_break_either_file(rt, db, tmp_path):
    start = local(rt, "2025-07-01 09:00")
    service.create_activity(db, title="志愿\x0b服务\x00日", now=start - timedelta(days=3),
                            start=start, group="青春志愿服务共同体", hours=1)
    data = summary.build(db, 2025, rt.clock.now(), rt.settings.tz, "zhiyuan")
    t = docx_tables(str(summary.to_docx(data, 2025, tmp_path / "c.docx")))
    assert t[("青春志愿服务共同体", "日期")][0][1] == "志愿服务日"
    book = load_workbook(summary.to_xlsx(data, 2025, tmp_path / "c.xlsx"))
    assert book["活动"]["C3"].value == "志愿服务日"
