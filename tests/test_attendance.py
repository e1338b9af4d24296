"""Hours that hold up (issue 12 item 3) and check-in codes that cannot be guessed (issue 10
item 6), through the real webhook: attendance stands, corrections are bounded, 签退 counts
the real time, and wrong codes are limited per member per activity."""
from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from activities import service
from tests.conftest import TOKEN  # noqa: F401  (the fixtures' account)

ZHANG = "oZhangSan0001"
LI = "oLiSi00000002"


@pytest.fixture
def make_activity(rt, db):
    def make(title="社区青年志愿服务日", *, days: float = 1, hours=3, **kw):
        now = rt.clock.now()
        start = kw.pop("start", now + timedelta(days=days))
        return service.create_activity(
            db, title=title, now=now, start=start, end=kw.pop("end", start + timedelta(hours=3)),
            location="长寿路街道市民驿站", hours=hours, group="青春志愿服务共同体", **kw)

    return make


def signed_up(wechat, openid: str, keyword: str, name: str = "张三") -> None:
    wechat.text(openid, f"绑定 {name} 虹口区城管执法局")
    assert wechat.text(openid, f"报名 {keyword}").text.startswith("报名成功")


def code_of(db, activity_id: int) -> str:
    return service.get_activity(db, activity_id)["checkin_code"]


def at_start(rt, db, activity_id: int, minutes: float = 0) -> None:
    start = service.start_of(service.get_activity(db, activity_id))
    rt.clock.set(start + timedelta(minutes=minutes))


# --- after check-in, 取消报名 is refused ------------------------------------------------------

def test_cancelling_after_check_in_is_refused_and_the_hours_stay(wechat, rt, db, make_activity):
    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    at_start(rt, db, aid, -30)
    assert wechat.text(ZHANG, f"签到 {code_of(db, aid)}").text.startswith("签到成功")

    reply = wechat.text(ZHANG, "取消报名").text
    assert reply == ("你已在「社区青年志愿服务日」签到，出勤记录和志愿时长已经记下，不能取消报名。"
                     "如有问题请联系活动组织者。")
    [row] = service.signup_list(db, aid)
    assert (row["status"], row["hours"]) == ("confirmed", 3.0)
    assert service.hours_total(db, ZHANG) == (3.0, 1)


def test_the_database_itself_keeps_attendance_and_hours_honest(wechat, rt, db, make_activity):
    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    signed_up(wechat, LI, "志愿服务日", "李四")
    at_start(rt, db, aid, -30)
    wechat.text(ZHANG, f"签到 {code_of(db, aid)}")
    zhang, li = service.signup_list(db, aid)
    with pytest.raises(sqlite3.IntegrityError, match="attended"):
        db.execute("UPDATE signups SET status = 'cancelled' WHERE id = ?", [zhang["id"]])
    with pytest.raises(sqlite3.IntegrityError, match="attended"):
        db.execute("UPDATE signups SET hours = 3 WHERE id = ?", [li["id"]])


# --- corrections: attended, started, a reason, 0 ≤ hours ≤ the activity's length -----------

def test_corrections_only_for_attended_signups_of_started_activities(wechat, rt, db,
                                                                     make_activity):
    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    signed_up(wechat, LI, "志愿服务日", "李四")
    zhang, li = service.signup_list(db, aid)
    with pytest.raises(service.InvalidActivity, match="活动还没开始"):
        service.correct_hours(db, li["id"], 2, "补录", "王老师", rt.clock.now())

    at_start(rt, db, aid, -30)
    wechat.text(ZHANG, f"签到 {code_of(db, aid)}")
    at_start(rt, db, aid, 200)
    with pytest.raises(service.InvalidActivity, match="没有签到"):
        service.correct_hours(db, li["id"], 2, "补录", "王老师", rt.clock.now())
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(service.InvalidActivity, match="0 或正数"):
            service.correct_hours(db, zhang["id"], bad, "更正", "王老师", rt.clock.now())
    with pytest.raises(service.InvalidActivity, match="不能超过活动时长（3 小时）"):
        service.correct_hours(db, zhang["id"], 3.5, "更正", "王老师", rt.clock.now())
    with pytest.raises(service.InvalidActivity, match="原因"):
        service.correct_hours(db, zhang["id"], 2, "  ", "王老师", rt.clock.now())
    assert service.correct_hours(db, zhang["id"], 0, "未实际参加服务", "王老师",
                                 rt.clock.now())["hours"] == 0
    assert db.execute("SELECT count(*) FROM hour_corrections").fetchone()[0] == 1
    assert service.get_signup(db, li["id"])["hours"] is None


def test_console_offers_corrections_only_where_they_can_be_made(wechat, rt, db, make_activity,
                                                                 app):
    from tests.test_console import Console, add_admin

    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    add_admin(rt, "组织者乙", "organiser")
    organiser = Console(app)
    assert organiser.login("组织者乙").status_code == 302
    page = organiser.get(f"/admin/activities/{aid}").get_data(as_text=True)
    assert "更正时长" not in page  # nobody attended an activity that has not happened
    at_start(rt, db, aid, -30)
    wechat.text(ZHANG, f"签到 {code_of(db, aid)}")
    at_start(rt, db, aid, 60)
    assert organiser.login("组织者乙").status_code == 302  # a day later: a new session
    page = organiser.get(f"/admin/activities/{aid}").get_data(as_text=True)
    assert "更正时长" in page and 'max="3"' in page
    signup_id = service.signup_list(db, aid)[0]["id"]
    organiser.post(f"/admin/activities/{aid}/signups/{signup_id}/hours",
                   {"hours": "nan", "reason": "x"})
    assert service.get_signup(db, signup_id)["hours"] == 3.0


# --- 签退: hours from the real attendance --------------------------------------------------

def test_check_out_credits_the_real_time_rounded_down(wechat, rt, db, make_activity):
    aid = make_activity(days=1, checkout=True, hours_step=0.5)
    signed_up(wechat, ZHANG, "志愿服务日")
    signed_up(wechat, LI, "志愿服务日", "李四")
    assert wechat.text(ZHANG, "签退").text.startswith("没有需要签退的活动")
    at_start(rt, db, aid, 20)  # arrives 20 minutes late
    reply = wechat.text(ZHANG, f"签到 {code_of(db, aid)}").text
    assert reply.startswith("签到成功：「社区青年志愿服务日」。") and "离开时回复“签退”" in reply
    assert service.signup_list(db, aid)[0]["hours"] is None  # nothing credited yet
    at_start(rt, db, aid, -10)
    wechat.text(LI, f"签到 {code_of(db, aid)}")

    at_start(rt, db, aid, 20 + 125)  # 2 h 5 min after arriving
    assert wechat.text(ZHANG, "签退").text.startswith(
        "签退成功：「社区青年志愿服务日」，按实际参加时间记志愿时长 2 小时。")
    assert wechat.text(ZHANG, "签退").text.startswith("你已经签退过了")
    at_start(rt, db, aid, 60 * 4)  # after the end: the time counts up to the end only
    assert "记志愿时长 3 小时" in wechat.text(LI, "签退").text
    assert service.hours_total(db, ZHANG) == (2.0, 1)
    assert "你的累计志愿时长：2 小时" in wechat.text(ZHANG, "我的志愿时长").text


def test_attended_hours_rounding():
    activity = {"start_at": "2026-11-28T01:00:00Z", "end_at": "2026-11-28T04:00:00Z",
                "hours_step": 0.25}
    t = service.from_db
    assert service.attended_hours(activity, t("2026-11-28T00:30:00Z"),
                                  t("2026-11-28T02:14:00Z")) == 1.0
    assert service.attended_hours(activity, t("2026-11-28T01:00:00Z"),
                                  t("2026-11-28T02:15:00Z")) == 1.25
    assert service.attended_hours(activity, t("2026-11-28T03:00:00Z"),
                                  t("2026-11-28T09:00:00Z")) == 1.0


# --- check-in codes: one reply, a limit per member per activity ---------------------------

def test_a_wrong_code_and_another_activitys_code_get_the_same_reply(wechat, rt, db,
                                                                    make_activity):
    mine = make_activity("社区青年志愿服务日", days=1)
    other = make_activity("爱心暑托班", days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    signed_up(wechat, LI, "志愿服务日", "李四")
    at_start(rt, db, mine, -30)
    unknown = wechat.text(ZHANG, "签到 000000").text
    others = wechat.text(LI, f"签到 {code_of(db, other)}").text
    assert unknown == others == service.WRONG_CODE
    assert "爱心暑托班" not in others


def test_five_wrong_codes_pause_check_in_for_that_activity(wechat, rt, db, make_activity):
    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    at_start(rt, db, aid, -30)
    replies = [wechat.text(ZHANG, f"签到 {100000 + n}").text for n in range(5)]
    assert all(r.startswith("签到码不正确") for r in replies)
    assert replies[3].endswith("还可以再试 1 次。")
    assert replies[4].endswith("输错次数已达上限，签到暂停 60 分钟。")

    paused = wechat.text(ZHANG, f"签到 {code_of(db, aid)}").text  # even the right code waits
    resume = (rt.clock.now() + timedelta(hours=1)).astimezone(rt.settings.tz)
    assert paused.startswith("签到码输错次数太多（60 分钟内 5 次），签到已暂停")
    assert f"请在 {resume:%H:%M} 后再试" in paused
    assert service.signup_list(db, aid)[0]["checked_in_at"] is None
    assert wechat.text(ZHANG, "签到 999999").text == paused  # no more guesses counted
    assert db.execute("SELECT count(*) FROM checkin_attempts").fetchone()[0] == 5

    rt.clock.set(rt.clock.now() + timedelta(minutes=61))
    assert wechat.text(ZHANG, f"签到 {code_of(db, aid)}").text.startswith("签到成功")


def test_the_limit_is_per_member(wechat, rt, db, make_activity):
    aid = make_activity(days=1)
    signed_up(wechat, ZHANG, "志愿服务日")
    signed_up(wechat, LI, "志愿服务日", "李四")
    at_start(rt, db, aid, -30)
    for n in range(6):
        wechat.text(ZHANG, f"签到 {200000 + n}")
    assert wechat.text(LI, f"签到 {code_of(db, aid)}").text.startswith("签到成功")


def test_the_limit_comes_from_settings(make_app, rt):
    from simulator.client import WeChatClient

    app = make_app(checkin_max_wrong=2, checkin_wrong_window_minutes=10)
    client = WeChatClient(TOKEN, app=app)
    client.text(ZHANG, "签到 123456")
    assert client.text(ZHANG, "签到 123457").text.endswith("签到暂停 10 分钟。")
    assert client.text(ZHANG, "签到 123458").text.startswith("签到码输错次数太多（10 分钟内 2 次）")
