"""Details members see (issue 12 item 2): `活动详情 N` and the organiser's notes in the
confirmation and the reminders, through the real webhook and the fake WeChat API."""
from __future__ import annotations

from datetime import timedelta

import pytest

from activities import service
from scheduler import jobs
from storage import deliveries
from tests.conftest import dispatch_all

ZHANG = "oZhangSan0001"
NOTES = "8:45 在市民驿站门口集合，穿志愿者马甲，自带水杯。"


@pytest.fixture
def activities(rt, db):
    now = rt.clock.now()
    first = service.create_activity(
        db, title="社区青年志愿服务日", now=now, start=now + timedelta(days=7),
        end=now + timedelta(days=7, hours=3), deadline=now + timedelta(days=5),
        capacity=20, location="长寿路街道市民驿站", hours=3, group="青春志愿服务共同体",
        description=NOTES)
    second = service.create_activity(db, title="智慧执法兴趣班", now=now,
                                     start=now + timedelta(days=9), checkout=True)
    return first, second


def test_details_by_list_number_show_everything_a_member_needs(wechat, activities):
    listing = wechat.text(ZHANG, "报名").text
    assert "活动详情 1" in listing and "剩余 20 个名额 · 11月26日(周四) 10:00截止" in listing
    reply = wechat.text(ZHANG, "活动详情 1").text
    assert reply.splitlines() == [
        "「社区青年志愿服务日」",
        "时间：11月28日(周六) 10:00–13:00",
        "地点：长寿路街道市民驿站",
        "报名截止：11月26日(周四) 10:00",
        "名额：剩余 20 个名额",
        "志愿时长：3 小时（签到后记入）",
        "组织：青春志愿服务共同体",
        f"注意事项：{NOTES}",
        "报名请回复“报名 1”。",
    ]
    second = wechat.text(ZHANG, "活动详情 2").text
    assert "志愿时长：按签到到签退的实际时间计（0.5 小时向下取整）" in second
    assert wechat.text(ZHANG, "详情 1").text == reply
    assert "志愿服务日" in wechat.text(ZHANG, "活动详情 志愿服务").text
    assert wechat.text(ZHANG, "活动详情 9").text.startswith("没有第9项")
    assert wechat.text(ZHANG, "活动详情").text.startswith("回复“活动详情 编号”查看详情")


def test_details_of_a_full_or_closed_activity_say_so(wechat, rt, db, activities):
    first, _ = activities
    service.close_activity(db, first, rt.clock.now())
    reply = wechat.text(ZHANG, "活动详情 社区青年志愿服务日").text
    assert reply.endswith("报名已截止：「社区青年志愿服务日」已停止报名。")


def test_confirmation_and_waitlist_reply_carry_the_notes(wechat, activities):
    wechat.text(ZHANG, "绑定 张三 虹口区城管执法局")
    done = wechat.text(ZHANG, "报名 志愿服务日").text
    assert done.startswith("报名成功！") and f"注意事项：{NOTES}" in done
    assert "志愿时长：3 小时（签到后记入）" in done


def test_reminders_carry_the_notes(make_app, fake_api):
    app = make_app(send_rate=0)
    rt = app.extensions["chengcheng"]
    from simulator.client import WeChatClient
    from tests.conftest import TOKEN

    db, now = rt.db(), rt.clock.now()
    aid = service.create_activity(db, title="社区青年志愿服务日", now=now,
                                  start=now + timedelta(days=2), location="长寿路街道市民驿站",
                                  description=NOTES)
    wechat = WeChatClient(TOKEN, app=app)
    wechat.text(ZHANG, "绑定 张三 虹口区城管执法局")
    wechat.text(ZHANG, "报名 志愿服务日")
    jobs.plan_activities(rt, aid)
    rt.clock.set(now + timedelta(days=1, minutes=1))
    dispatch_all(rt)
    [reminder] = [m for m in fake_api.inbox(ZHANG) if "活动提醒" in (m["content"] or "")]
    assert f"注意事项：{NOTES}" in reminder["content"]
    # the organiser changes the notes: reminders not yet sent say the new ones
    service.update_activity(db, aid, {"description": "改为 9:00 集合"}, rt.clock.now(),
                            rt.settings.tz)
    jobs.plan_activities(rt, aid)
    pending = [r for r in deliveries.with_prefix(db, f"reminder:{aid}:") if r["status"] == "pending"]
    assert pending and all("注意事项：改为 9:00 集合" in r["text"] for r in pending)
