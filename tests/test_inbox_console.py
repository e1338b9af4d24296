"""The console's 人工回复 page and the dashboard's view of it, through Flask's test client."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from clock import to_db
from storage import audit, members, messages
from storage import handoff as store
from tests.conftest import dispatch_all

ANN = "oMemberAnn00001"
BOB = "oMemberBob00002"
UNKNOWN = "宿舍楼的热水器坏了找谁修"


@pytest.fixture
def app(make_app):
    return make_app(send_rate=0, reply_budget=60, wechat_template_notice="TPL_NOTICE")


def later(rt, **delta):
    rt.clock.set(rt.clock.now() + timedelta(**delta))


def thread_url(rt, openid: str) -> str:
    row = store.open_for(rt.db(), openid) or store.recently_closed(rt.db())[0]
    return f"/admin/inbox/{row['id']}"


def test_open_conversations_come_first_by_waiting_time(organiser, wechat, rt):
    assert "没有等待人工回复的成员" in organiser.get("/admin/inbox/").get_data(as_text=True)
    wechat.text(BOB, "绑定 李四 徐汇区城管执法局 13922223333")
    wechat.text(BOB, "人工")
    later(rt, minutes=30)
    wechat.text(ANN, "人工")
    wechat.text(ANN, UNKNOWN)
    later(rt, minutes=5)
    page = organiser.get("/admin/inbox/").get_data(as_text=True)
    assert page.index("李四") < page.index("未登记姓名")  # Bob has waited 35 min, Ann 5
    assert "等了 35 分钟" in page and "等了 5 分钟" in page and UNKNOWN in page
    assert re.search(r'id="waiting">2<', page) and re.search(r'id="oldest">35 分钟<', page)


def test_a_conversation_shows_messages_profile_and_what_wechat_allows(organiser, wechat, rt):
    wechat.text(ANN, "绑定 张三 虹口区城管执法局 13812345678")
    wechat.text(ANN, "人工")
    wechat.text(ANN, UNKNOWN)
    page = organiser.get(thread_url(rt, ANN)).get_data(as_text=True)
    assert UNKNOWN in page and "已转给工作人员" in page and "已通知工作人员" in page
    assert "138****5678" in page and "13812345678" not in page and ANN not in page
    assert re.search(r'id="hours-left">47 小时<', page)  # never rounded up
    assert re.search(r'id="messages-left">5 条<', page)
    assert "发送回复" in page


def test_a_reply_goes_through_the_outbox_and_is_audited(organiser, wechat, rt, fake_api):
    wechat.text(ANN, "人工")
    url = thread_url(rt, ANN)
    nonce = re.search(r'name="nonce" value="(\w+)"', organiser.get(url).get_data(as_text=True))[1]
    resp = organiser.post(url + "/reply", {"text": "您好，热水器已报修。", "nonce": nonce,
                                           "channel": "custom"})
    assert resp.status_code == 302
    organiser.post(url + "/reply", {"text": "您好，热水器已报修。", "nonce": nonce,
                                    "channel": "custom"})  # the form sent twice
    dispatch_all(rt)
    assert [(m["kind"], m["content"]) for m in fake_api.inbox(ANN)] == [
        ("custom", "您好，热水器已报修。")]
    page = organiser.get(url).get_data(as_text=True)
    assert "已送达" in page and re.search(r'id="messages-left">4 条<', page)
    assert [a["actor"] for a in audit.recent(rt.db()) if a["action"] == "人工回复"] == ["组织者乙"]
    assert store.waiting(rt.db())[0] == 0


def test_outside_the_window_the_page_offers_the_notice_template(organiser, wechat, rt,
                                                                fake_api):
    wechat.text(ANN, "人工")
    url = thread_url(rt, ANN)
    rt.db().execute("UPDATE members SET last_seen = ? WHERE openid = ?",  # 49 hours ago
                    [to_db(rt.clock.now() - timedelta(hours=49)), ANN])
    page = organiser.get(url).get_data(as_text=True)
    assert 'id="window-closed"' in page and "48 小时" in page and "用通知模板发送" in page
    assert "发送回复" not in page
    organiser.post(url + "/reply", {"text": "窗口外的客服消息", "channel": "custom"})
    assert not [d for d in fake_api.inbox(ANN) if d["content"] == "窗口外的客服消息"]
    organiser.post(url + "/reply", {"text": "您好，热水器周一修好。", "channel": "template"})
    dispatch_all(rt)
    assert fake_api.inbox(ANN)[-1]["kind"] == "template"


def test_closing_hands_the_member_back_to_the_bot(organiser, wechat, rt):
    wechat.text(ANN, "人工")
    url = thread_url(rt, ANN)
    resp = organiser.post(url + "/close")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/inbox/"
    assert store.open_for(rt.db(), ANN) is None
    assert "没有找到" in wechat.text(ANN, UNKNOWN).text
    assert "结束人工对话" in [a["action"] for a in audit.recent(rt.db())]
    assert "已结束" in organiser.get(url).get_data(as_text=True)
    assert "已经结束" in organiser.post(url + "/close", follow_redirects=True).get_data(
        as_text=True)


def test_unknown_conversations_are_404_and_logged_out_visitors_go_to_login(app, organiser):
    assert organiser.get("/admin/inbox/999").status_code == 404
    assert organiser.post("/admin/inbox/999/reply", {"text": "x"}).status_code == 404
    assert app.test_client().get("/admin/inbox/").status_code == 302


def test_dashboard_shows_the_wait_skips_test_members_and_merges_the_schedule_question(
        organiser, wechat, rt):
    wechat.text(ANN, "人工")
    wechat.text("sim-zhang-001", "你好")
    wechat.text("test-li-002", "你好")
    later(rt, hours=1, minutes=10)
    db, now = rt.db(), rt.clock.now()
    for n, topic in enumerate(["schedule:month", "schedule:quarter", "schedule:month"]):
        messages.claim(db, dedupe_key=f"q{n}", msg_id=None, openid=ANN, type="text", event=None,
                       content="这个月有什么活动", now=now)
        messages.finish(db, f"q{n}", reply="…", handler="knowledge.schedule", topic=topic,
                        answered=True, status="done", latency_ms=1, now=now)
    page = organiser.get("/admin/").get_data(as_text=True)
    assert "1</b> 位成员在等回复，最久已等 <b>1 小时 10 分" in page
    assert members.stats(db)["total"] == 3
    assert re.search(r"<b>1</b><span>成员总数", page)
    assert page.count("日程查询") == 1 and "3 次" in page
