"""The 志愿服务记录证明 PDF (issue 12 item 4): from the CLI and the console, read back with pypdf;
each issue numbered and in the audit log; `我的志愿证明` tells a member how to get one."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from activities import service
from bot import cli
from storage import audit
from tests.conftest import APPID, SECRET, TOKEN
from tests.test_console import Console, add_admin

MEMBER = "oCertMember01"
NAME = "阿依古丽·买买提"


def pdf_text(data: bytes) -> str:
    """The PDF's text with all white space removed (lines wrap where the layout says)."""
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return re.sub(r"\s+", "", text)


def flat(words: str) -> str:
    return re.sub(r"\s+", "", words)


@pytest.fixture
def attended(wechat, rt, db):
    """The member attended two activities; the second's hours were corrected."""
    now = rt.clock.now()
    ids = []
    for n, (title, hours) in enumerate([("社区青年志愿服务日", 3), ("进博会城市保障", 4)], 1):
        start = now + timedelta(days=n)
        ids.append(service.create_activity(db, title=title, now=now, start=start,
                                           end=start + timedelta(hours=4), hours=hours,
                                           group="青春志愿服务共同体"))
    wechat.text(MEMBER, f"绑定 {NAME} 虹口区城管执法局")
    for aid in ids:
        assert wechat.text(MEMBER, f"报名 {service.get_activity(db, aid)['title']}").text \
            .startswith("报名成功")
        start = service.start_of(service.get_activity(db, aid))
        rt.clock.set(start - timedelta(minutes=20))
        code = service.get_activity(db, aid)["checkin_code"]
        assert wechat.text(MEMBER, f"签到 {code}").text.startswith("签到成功")
    rt.clock.set(rt.clock.now() + timedelta(hours=5))
    signup = service.signup_list(db, ids[1])[0]
    service.correct_hours(db, signup["id"], 3.5, "提前半小时离开", "王老师", rt.clock.now())
    return ids


def test_cli_writes_the_certificate_and_records_it(settings, rt, db, attended, tmp_path):
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": settings.wechat_api_base,
           "BOT_FAKE_NOW": settings.fake_now}
    target = tmp_path / "证明.pdf"
    result = CliRunner().invoke(cli, ["volunteer-record", MEMBER, "--pdf", str(target)], env=env)
    assert result.exit_code == 0, result.output
    number = re.search(r"志愿服务记录证明 (CC2026-\d{5})", result.output).group(1)
    text = pdf_text(target.read_bytes())
    for words in ("志愿服务记录证明", f"证明编号：{number}", NAME, "虹口区城管执法局",
                  "社区青年志愿服务日", "进博会城市保障", "青春志愿服务共同体", "2026-11-22",
                  "2026-11-23", "累计志愿服务时长 6.5 小时", "2 次活动",
                  "由 王老师 将 4 小时改为 3.5 小时，原因：提前半小时离开",
                  "民政部令第67号", "出具日期：2026年11月21日"):
        assert flat(words) in text, words
    [line] = [r for r in audit.recent(db) if r["action"] == "出具志愿服务记录证明"]
    assert line["target"] == number and NAME not in (line["detail"] or "")
    assert line["actor"].startswith("命令行")
    second = CliRunner().invoke(cli, ["volunteer-record", MEMBER, "--pdf",
                                      str(tmp_path / "again.pdf")], env=env)
    assert re.search(r"CC2026-\d{5}", second.output).group(0) != number  # a new number each time
    nobody = CliRunner().invoke(cli, ["volunteer-record", "oNobody", "--pdf",
                                      str(tmp_path / "x.pdf")], env=env)
    assert nobody.exit_code == 1 and "没有这个成员" in nobody.output


def test_console_button_downloads_the_certificate(app, rt, db, attended):
    add_admin(rt, "组织者乙", "organiser")
    organiser = Console(app)
    assert organiser.login("组织者乙").status_code == 302
    page = organiser.get(f"/admin/activities/{attended[0]}").get_data(as_text=True)
    assert "志愿证明" in page
    signup = service.signup_list(db, attended[0])[0]
    resp = organiser.post(f"/admin/activities/{attended[0]}/signups/{signup['id']}/certificate")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    text = pdf_text(resp.data)
    assert NAME in text and flat("累计志愿服务时长 6.5 小时") in text
    [line] = [r for r in audit.recent(db) if r["action"] == "出具志愿服务记录证明"]
    assert line["actor"] == "组织者乙" and line["target"] in text
    assert organiser.post(f"/admin/activities/{attended[0]}/signups/999/certificate") \
        .status_code == 404


def test_no_certificate_without_a_name_or_records(rt, db, wechat):
    from activities.certificate import CertificateError, issue

    wechat.text("oNoProfile001", "帮助")
    with pytest.raises(CertificateError, match="还没有登记姓名"):
        issue(db, "oNoProfile001", rt.clock.now(), rt.settings.tz, "王老师")
    wechat.text("oNoProfile001", "绑定 张三 虹口区城管执法局")
    with pytest.raises(CertificateError, match="暂无志愿服务记录"):
        issue(db, "oNoProfile001", rt.clock.now(), rt.settings.tz, "王老师")
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


def test_a_member_asking_is_told_how(wechat, attended):
    reply = wechat.text(MEMBER, "我的志愿证明").text
    assert reply.startswith("你目前累计志愿时长 6.5 小时（2 次活动）")
    assert "由记录时长的组织方出具" in reply and "志愿证明" in reply
    stranger = wechat.text("oStranger0001", "我的志愿证明").text
    assert stranger.startswith("你还没有志愿时长记录") and "绑定 姓名 单位" in stranger
