"""The organisers' commands (`python bot.py activity …`, `signups`, `volunteer-record`,
`volunteer-correct`, `member role`) on the same SQLite file the webhook uses."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from activities import defaults, service
from bot import cli
from storage import members
from tests.conftest import APPID, SECRET, TOKEN, dispatch_all


@pytest.fixture
def run(settings, rt):
    """Invoke `bot.py` with the test's data directory and fake clock in the environment."""
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN,
           "WECHAT_APPID": APPID, "WECHAT_SECRET": SECRET,
           "WECHAT_API_BASE": settings.wechat_api_base, "BOT_FAKE_NOW": settings.fake_now}

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + (result.stderr or "")
        return result

    invoke.env = env  # a test may move BOT_FAKE_NOW
    return invoke


def add(run, *extra: str, title: str = "进博会青年突击队集训") -> int:
    result = run("activity", "add", "--title", title, "--start", "2026-11-28 09:00", *extra)
    return int(result.stdout.strip())


def sign_up(wechat, openid: str, name: str, keyword: str, phone: str = "") -> str:
    wechat.text(openid, f"绑定 {name} 虹口区城管执法局 {phone}".strip())
    return wechat.text(openid, f"报名 {keyword}").text


def test_every_command_has_help(run):
    for args in (["activity"], ["activity", "add"], ["activity", "update"], ["activity", "list"],
                 ["activity", "show"], ["activity", "open"], ["activity", "close"],
                 ["activity", "cancel"], ["activity", "defaults"], ["signups"],
                 ["volunteer-record"], ["volunteer-correct"], ["member"], ["member", "role"]):
        result = run(*args, "--help")
        assert "Usage:" in result.output and len(result.output) > 60, args


def test_add_prints_the_id_and_reads_local_time(run, db, rt):
    aid = add(run, "--end", "2026-11-28 11:30:45", "--deadline", "2026-11-27 18:00",
              "--capacity", "30", "--location", "国家会展中心", "--group", "青春执法保障共同体",
              "--hours", "2.5")
    a = service.get_activity(db, aid)
    assert (a["start_at"], a["end_at"], a["deadline_at"]) == \
        ("2026-11-28T01:00:00Z", "2026-11-28T03:30:45Z", "2026-11-27T10:00:00Z")
    assert (a["capacity"], a["location"], a["grp"], a["hours"], a["status"]) == \
        (30, "国家会展中心", "青春执法保障共同体", 2.5, "open")
    assert len(a["checkin_code"]) == 6 and a["created_by"].startswith("命令行")
    second = add(run, "--start", "2026-12-01 09:00:30", title="智慧执法兴趣班")
    assert second == aid + 1
    listing = run("activity", "list").output
    assert "进博会青年突击队集训（青春执法保障共同体）" in listing and "智慧执法兴趣班" in listing
    assert a["checkin_code"] in listing
    assert "签到码：" + a["checkin_code"] in run("activity", "show", str(aid)).output


@pytest.mark.parametrize("args,words", [
    (["--title", "x", "--start", "2026-13-01 09:00"], "时间格式应为"),
    (["--title", "x", "--start", "2026-11-01 09:00"], "开始时间已经过去"),
    (["--title", "x", "--start", "2026-11-28 09:00", "--end", "2026-11-28 08:00"], "结束时间必须晚于"),
    (["--title", "x", "--start", "2026-11-28 09:00", "--deadline", "2026-11-29 08:00"], "截止时间不能晚于"),
    (["--title", "x", "--start", "2026-11-28 09:00", "--capacity", "0"], "名额应为正整数"),
    (["--title", "x", "--start", "2026-11-28 09:00", "--hours", "-1"], "志愿时长应在"),
    (["--start", "2026-11-28 09:00"], "--title"),
    (["--title", "x"], "开始时间"),
])
def test_add_refuses_bad_input_clearly(run, args, words):
    result = run("activity", "add", *args, ok=False)
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output


def test_close_open_and_cancel(run, wechat, rt, db, fake_api):
    aid = add(run, "--capacity", "1")
    assert sign_up(wechat, "oCliMember01", "张三", "进博会").startswith("报名成功")
    assert "候补第1位" in sign_up(wechat, "oCliMember02", "李四", "进博会")
    assert "已截止报名" in run("activity", "close", str(aid)).output
    assert sign_up(wechat, "oCliMember03", "王五", "进博会").startswith("报名已截止")
    assert "已开放报名" in run("activity", "open", str(aid)).output
    assert "候补第2位" in wechat.text("oCliMember03", "报名 进博会").text

    out = run("activity", "cancel", str(aid), "--reason", "场馆临时调整").output
    assert "已给 3 位报名成员排队发送通知" in out
    assert service.get_activity(db, aid)["status"] == "cancelled"
    dispatch_all(rt)
    for openid in ("oCliMember01", "oCliMember02", "oCliMember03"):
        [notice] = fake_api.inbox(openid)
        assert "活动已取消" in notice["content"] and "场馆临时调整" in notice["content"]
    assert wechat.text("oCliMember04", "报名 进博会").text.startswith("活动已取消")
    again = run("activity", "cancel", str(aid), ok=False)
    assert again.exit_code != 0 and "已经取消过了" in again.output
    assert "没有编号为 999 的活动" in run("activity", "open", "999", ok=False).output


def test_update_adds_places_and_promotes_in_order(run, wechat, rt, db, fake_api):
    aid = add(run, "--capacity", "1")
    for n, name in enumerate(["张三", "李四", "王五"]):
        sign_up(wechat, f"oCliMember0{n}", name, "进博会")
    out = run("activity", "update", str(aid), "--capacity", "2", "--location", "国家会展中心").output
    assert "1 位候补成员已递补并通知" in out
    rows = service.signup_list(db, aid)
    assert [r["status"] for r in rows] == ["confirmed", "confirmed", "waitlisted"]
    dispatch_all(rt)
    assert "候补递补成功" in fake_api.inbox("oCliMember01")[0]["content"]
    refused = run("activity", "update", str(aid), "--capacity", "1", ok=False)
    assert "名额不能少于已确认的人数（2 人）" in refused.output


def test_defaults_load_drafts_once(run, db):
    out = run("activity", "defaults").output
    drafts = defaults.drafts()
    assert f"已载入 {len(drafts)} 个草稿活动（0 个之前已载入）" in out
    assert len(drafts) == 10 + 13
    assert f"已载入 0 个草稿活动（{len(drafts)} 个之前已载入）" in run("activity", "defaults").output
    rows = service.list_activities(db, ("draft",))
    assert len(rows) == 23 and len({r["source_key"] for r in rows}) == 23
    youth = next(r for r in rows if r["title"] == "组建进博会青年突击队")
    assert youth["grp"] == "青春执法保障共同体" and "第四季度" in youth["description"]
    assert youth["source_key"] == "alliance2025:baozhang:组建进博会青年突击队"
    tijian = next(r for r in rows if r["title"] == "组织体检")
    assert tijian["grp"] == "局工会、组织人事处" and "9月" in tijian["description"]
    # an organiser gives a draft its dates and capacity, then opens it; reloading keeps the edits
    run("activity", "update", str(youth["id"]), "--start", "2026-12-05 09:00", "--capacity", "20")
    assert "签到码" in run("activity", "open", str(youth["id"])).output
    run("activity", "defaults")
    assert service.get_activity(db, youth["id"])["capacity"] == 20
    draft = next(r for r in rows if r["title"] == "组织体检")
    assert "请设置活动开始时间" in run("activity", "open", str(draft["id"]), ok=False).output


def test_signups_export_masks_phones_unless_revealed(run, wechat, db, tmp_path):
    aid = add(run, "--capacity", "1")
    sign_up(wechat, "oCliMember01", "张三", "进博会", "13812345678")
    sign_up(wechat, "oCliMember02", "李四", "进博会")
    masked = run("signups", str(aid)).stdout
    rows = list(csv.reader(io.StringIO(masked)))
    assert rows[0] == ["序号", "姓名", "单位", "手机", "状态", "候补位次", "报名时间", "确认时间",
                       "取消时间", "签到时间", "志愿时长"]
    assert rows[1][:6] == ["1", "张三", "虹口区城管执法局", "138****5678", "已确认", ""]
    assert rows[2][:6] == ["2", "李四", "虹口区城管执法局", "", "候补", "1"]
    assert "13812345678" not in masked
    assert "13812345678" in run("signups", str(aid), "--reveal").stdout

    out_csv = tmp_path / "list.csv"
    run("signups", str(aid), "--output", str(out_csv))
    assert out_csv.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "138****5678" in out_csv.read_text("utf-8-sig")

    out_xlsx = tmp_path / "list.xlsx"
    result = run("signups", str(aid), "--format", "xlsx", "--output", str(out_xlsx))
    assert "已导出 2 条报名记录" in result.stderr
    sheet = load_workbook(out_xlsx).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert "进博会青年突击队集训" in values[0][0]
    assert values[1][:4] == ["序号", "姓名", "单位", "手机"]
    assert values[2][1:5] == ["张三", "虹口区城管执法局", "138****5678", "已确认"]
    revealed = tmp_path / "full.xlsx"
    run("signups", str(aid), "--format", "xlsx", "--reveal", "--output", str(revealed))
    assert load_workbook(revealed).active.cell(row=3, column=4).value == "13812345678"


def test_volunteer_record_and_logged_correction(run, wechat, rt, db):
    aid = add(run, "--hours", "3", "--group", "青春志愿服务共同体", "--end", "2026-11-28 12:00",
              title="社区青年志愿服务日")
    code = service.get_activity(db, aid)["checkin_code"]
    sign_up(wechat, "oCliMember01", "张三", "志愿服务日")
    assert "暂无志愿服务记录" in run("volunteer-record", "oCliMember01").output
    rt.clock.set(rt.clock.now() + timedelta(days=7, hours=-1, minutes=10))
    assert wechat.text("oCliMember01", f"签到 {code}").text.startswith("签到成功")

    record = run("volunteer-record", "oCliMember01").output
    assert "志愿者：张三    单位：虹口区城管执法局" in record
    assert "2026-11-28  社区青年志愿服务日 / 青春志愿服务共同体 / 3 /" in record
    assert "累计志愿服务时长 3 小时" in record
    signup_id = service.signup_list(db, aid)[0]["id"]

    refused = run("volunteer-correct", str(signup_id), "--hours", "2.5", "--reason", " ", ok=False)
    assert "必须写明原因" in refused.output
    early = run("volunteer-correct", str(signup_id), "--hours", "2.5", "--reason", "早退", ok=False)
    assert "活动还没开始" in early.output
    run.env["BOT_FAKE_NOW"] = "2026-11-28 12:30"
    for bad in ("nan", "inf", "-1", "3.5"):
        refused = run("volunteer-correct", str(signup_id), "--hours", bad, "--reason", "x",
                      ok=False)
        assert refused.exit_code == 1 and ("志愿时长" in refused.output), bad
    out = run("volunteer-correct", str(signup_id), "--hours", "2.5", "--reason",
              "提前半小时离开，组织者确认", "--actor", "王老师").output
    assert "3 → 2.5 小时" in out
    [fix] = list(db.query("SELECT * FROM hour_corrections"))
    assert (fix["signup_id"], fix["old_hours"], fix["new_hours"], fix["actor"], fix["reason"]) == \
        (signup_id, 3.0, 2.5, "王老师", "提前半小时离开，组织者确认")
    record = run("volunteer-record", "oCliMember01").output
    assert "累计志愿服务时长 2.5 小时" in record
    assert "由 王老师 将 3 小时改为 2.5 小时，原因：提前半小时离开，组织者确认" in record
    assert wechat.text("oCliMember01", "我的志愿时长").text.startswith("你的累计志愿时长：2.5 小时")
    assert "没有这个成员" in run("volunteer-record", "oNobody", ok=False).output
    assert "没有找到这条报名记录" in run("volunteer-correct", "999", "--hours", "1", "--reason",
                                      "x", ok=False).output


def test_member_role(run, wechat, db):
    wechat.text("oCliMember01", "帮助")
    assert "现在是 组织者" in run("member", "role", "oCliMember01", "organiser").output
    assert members.get(db, "oCliMember01")["role"] == "organiser"
    run("member", "role", "oCliMember01", "member")
    assert members.get(db, "oCliMember01")["role"] == "member"
    assert "没有这个成员" in run("member", "role", "oNobody", "organiser", ok=False).output
    assert run("member", "role", "oCliMember01", "boss", ok=False).exit_code != 0


def test_checkout_and_rounding_are_set_from_the_command_line(run, db):
    aid = add(run, "--end", "2026-11-28 12:00", "--checkout", "--hours-step", "0.25")
    a = service.get_activity(db, aid)
    assert (a["checkout"], a["hours_step"]) == (1, 0.25)
    assert "签退开启：按实际时间，0.25 小时取整" in run("activity", "show", str(aid)).output
    run("activity", "update", str(aid), "--no-checkout")
    assert service.get_activity(db, aid)["checkout"] == 0
    assert "时长取整单位应为" in run("activity", "update", str(aid), "--hours-step", "0.3",
                                 ok=False).output
