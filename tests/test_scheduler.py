"""Reminders planned into the outbox and sent at the right time; one scheduler at a time."""
from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from activities import service as acts
from clock import parse_local
from scheduler import jobs
from scheduler.dispatcher import CLAIM_FOR, Dispatcher
from scheduler.service import LEASE, MISFIRE_GRACE_SECONDS, SchedulerService
from settings import parse_offsets
from storage import claims, deliveries, leases, members
from wechat.api import WeChatAPI

REMIND_TPL = "TPL_REMIND"


@pytest.fixture
def app(make_app):
    """The app every fixture here (rt, wechat, db) shares: templates set, no rate limit."""
    return make_app(send_rate=0, wechat_template_reminder=REMIND_TPL,
                    wechat_template_notice="TPL_NOTICE")


def at(rt, text: str):
    return parse_local(text, rt.settings.tz)


def go(rt, text: str) -> None:
    """Move the bot's clock to a local time, then do what the scheduler does."""
    rt.clock.set(at(rt, text))
    jobs.plan_all(rt)
    Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now)).drain()


def join(rt, *openids: str, seen_days_ago: float = 0) -> None:
    for openid in openids:
        members.touch(rt.db(), openid, rt.clock.now() - timedelta(days=seen_days_ago))


def activity(rt, start: str, capacity: int | None = None, title: str = "世纪公园植树") -> int:
    return acts.create_activity(rt.db(), title=title, now=rt.clock.now(), start=at(rt, start),
                                capacity=capacity, location="世纪公园2号门")


def sign_up(rt, activity_id: int, openid: str) -> dict:
    return acts.sign_up(rt.db(), activity_id, openid, rt.clock.now()).signup


def cancel(rt, signup: dict) -> None:
    acts.cancel_signup(rt.db(), signup["id"], rt.clock.now(), rt.settings.tz)


def reminder_rows(rt) -> dict[str, dict]:
    return {r["dedupe_key"]: r for r in deliveries.with_prefix(rt.db(), "reminder:")}


def reminded(fake_api) -> list[dict]:
    """Activity reminders WeChat received (by template outside the 48 h window, else text)."""
    return [m for m in fake_api.inbox() if m["template_id"] == REMIND_TPL
            or (m["content"] or "").startswith("活动提醒")]


def text_of(message: dict) -> str:
    return message["data"]["remark"]["value"] if message["data"] else message["content"]


# --- activity reminders ---------------------------------------------------------------------

def test_reminders_at_each_offset_for_confirmed_sign_ups_only(rt, fake_api):
    join(rt, "oAlice0001", "oBobby0002", "oCarol0003", "oDavid0004", seen_days_ago=3)
    aid = activity(rt, "2026-11-23 10:00", capacity=2)
    sign_up(rt, aid, "oAlice0001")
    sign_up(rt, aid, "oBobby0002")
    assert sign_up(rt, aid, "oCarol0003")["status"] == "waitlisted"
    cancel(rt, sign_up(rt, aid, "oDavid0004"))
    jobs.plan_all(rt)
    rows = reminder_rows(rt)
    assert sorted(rows) == [f"reminder:{aid}:oAlice0001:7200", f"reminder:{aid}:oAlice0001:86400",
                            f"reminder:{aid}:oBobby0002:7200", f"reminder:{aid}:oBobby0002:86400"]
    due = {k.rsplit(":", 1)[1]: r["due_at"] for k, r in rows.items()}
    assert due == {"86400": "2026-11-22T02:00:00Z", "7200": "2026-11-23T00:00:00Z"}
    assert {r["expires_at"] for r in rows.values()} == {"2026-11-23T02:00:00Z"}

    go(rt, "2026-11-22 09:59")
    assert reminded(fake_api) == []
    go(rt, "2026-11-22 10:00")
    assert sorted(m["openid"] for m in reminded(fake_api)) == ["oAlice0001", "oBobby0002"]
    assert "11月23日(周一) 10:00" in text_of(reminded(fake_api)[0])
    go(rt, "2026-11-23 08:00")
    assert Counter(m["openid"] for m in reminded(fake_api)) == {"oAlice0001": 2, "oBobby0002": 2}
    first = reminded(fake_api)[0]
    assert first["data"]["keyword1"]["value"] == "世纪公园植树"
    assert first["data"]["keyword3"]["value"] == "世纪公园2号门"


def test_planning_twice_adds_nothing(rt):
    join(rt, "oAlice0001")
    sign_up(rt, activity(rt, "2026-11-23 10:00"), "oAlice0001")
    assert jobs.plan_all(rt)["reminders_added"] == 2
    assert not any(jobs.plan_all(rt).values())


def test_offsets_come_from_settings(make_app):
    rt = make_app(reminder_offsets=parse_offsets("1d,30m")).extensions["chengcheng"]
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    assert sorted(reminder_rows(rt)) == [f"reminder:{aid}:oAlice0001:1800",
                                         f"reminder:{aid}:oAlice0001:86400"]


def test_cancelled_sign_up_sends_none_and_the_promoted_member_is_reminded(rt, fake_api):
    join(rt, "oAlice0001", "oBobby0002")
    aid = activity(rt, "2026-11-23 10:00", capacity=1)
    alice = sign_up(rt, aid, "oAlice0001")
    sign_up(rt, aid, "oBobby0002")  # waitlisted
    jobs.plan_all(rt)
    rt.clock.set(at(rt, "2026-11-21 18:00"))
    cancel(rt, alice)  # Bobby moves up
    jobs.plan_all(rt)
    rows = reminder_rows(rt)
    assert {rows[k]["status"] for k in rows if "oAlice0001" in k} == {"cancelled"}
    assert {rows[k]["last_error"] for k in rows if "oAlice0001" in k} == {"报名已取消"}
    assert {rows[k]["status"] for k in rows if "oBobby0002" in k} == {"pending"}
    go(rt, "2026-11-22 10:00")
    go(rt, "2026-11-23 08:00")
    assert [m["openid"] for m in reminded(fake_api)] == ["oBobby0002", "oBobby0002"]


def test_signing_up_again_after_cancelling_re_arms_the_reminders(rt):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    cancel(rt, sign_up(rt, aid, "oAlice0001"))
    jobs.plan_all(rt)
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    assert {r["status"] for r in reminder_rows(rt).values()} == {"pending"}


def test_cancelled_activity_sends_none(rt, fake_api):
    join(rt, "oAlice0001", "oBobby0002")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    sign_up(rt, aid, "oBobby0002")
    jobs.plan_all(rt)
    acts.cancel_activity(rt.db(), aid, rt.clock.now(), rt.settings.tz)
    jobs.plan_all(rt)
    rows = reminder_rows(rt).values()
    assert {(r["status"], r["last_error"]) for r in rows} == {("cancelled", "活动已取消")}
    go(rt, "2026-11-22 10:00")
    go(rt, "2026-11-23 08:00")
    assert reminded(fake_api) == []


def test_a_cancellation_between_planning_runs_is_caught_before_sending(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    acts.cancel_activity(rt.db(), aid, rt.clock.now(), rt.settings.tz)
    rt.clock.set(at(rt, "2026-11-22 10:00"))  # no planning run in between
    Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now)).drain()
    assert reminded(fake_api) == []
    assert reminder_rows(rt)[f"reminder:{aid}:oAlice0001:86400"]["last_error"] == "活动已取消"


def test_moving_an_activity_moves_its_reminders(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    acts.update_activity(rt.db(), aid, {"start": at(rt, "2026-11-24 15:00")}, rt.clock.now(),
                         rt.settings.tz)
    assert jobs.plan_all(rt)["reminders_moved"] == 2
    rows = reminder_rows(rt)
    assert rows[f"reminder:{aid}:oAlice0001:86400"]["due_at"] == "2026-11-23T07:00:00Z"
    assert rows[f"reminder:{aid}:oAlice0001:7200"]["due_at"] == "2026-11-24T05:00:00Z"
    go(rt, "2026-11-22 10:00")  # the old time: nothing
    go(rt, "2026-11-23 08:00")
    assert reminded(fake_api) == []
    go(rt, "2026-11-23 15:00")
    [message] = reminded(fake_api)
    assert "11月24日(周二) 15:00" in text_of(message)


def test_a_move_between_planning_runs_is_caught_before_sending(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    acts.update_activity(rt.db(), aid, {"start": at(rt, "2026-11-25 10:00")}, rt.clock.now(),
                         rt.settings.tz)
    rt.clock.set(at(rt, "2026-11-22 10:00"))
    Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now)).drain()
    assert reminded(fake_api) == []
    assert reminder_rows(rt)[f"reminder:{aid}:oAlice0001:86400"]["due_at"] == \
        "2026-11-24T02:00:00Z"


def test_a_reminder_already_sent_goes_again_for_the_new_time(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    go(rt, "2026-11-22 10:00")
    assert len(reminded(fake_api)) == 1
    acts.update_activity(rt.db(), aid, {"start": at(rt, "2026-11-26 10:00")}, rt.clock.now(),
                         rt.settings.tz)
    go(rt, "2026-11-23 08:00")
    assert len(reminded(fake_api)) == 1
    go(rt, "2026-11-25 10:00")
    assert len(reminded(fake_api)) == 2
    assert "11月26日" in text_of(reminded(fake_api)[1])


def test_late_sign_ups_get_only_the_reminders_still_ahead(rt):
    join(rt, "oAlice0001", "oBobby0002")
    aid = activity(rt, "2026-11-23 10:00")
    rt.clock.set(at(rt, "2026-11-23 07:00"))
    sign_up(rt, aid, "oAlice0001")
    rt.clock.set(at(rt, "2026-11-23 09:00"))
    sign_up(rt, aid, "oBobby0002")
    jobs.plan_all(rt)
    assert sorted(reminder_rows(rt)) == [f"reminder:{aid}:oAlice0001:7200"]


def test_missed_reminders_go_out_on_restart_while_still_useful(rt, fake_api):
    join(rt, "oAlice0001", "oBobby0002")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    sign_up(rt, aid, "oBobby0002")  # signed up while the scheduler was down: never planned
    go(rt, "2026-11-23 09:00")  # back up after both reminder times, before the start
    assert sorted(m["openid"] for m in reminded(fake_api)) == ["oAlice0001", "oBobby0002"]
    rows = reminder_rows(rt)
    for who in ("oAlice0001", "oBobby0002"):
        assert rows[f"reminder:{aid}:{who}:7200"]["status"] == "sent"
        assert rows[f"reminder:{aid}:{who}:86400"]["status"] == "dropped"
        assert rows[f"reminder:{aid}:{who}:86400"]["last_error"] == jobs.SUPERSEDED


def test_missed_reminders_past_the_start_are_dropped_and_recorded(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    go(rt, "2026-11-23 10:30")
    assert reminded(fake_api) == []
    assert {(r["status"], r["last_error"]) for r in reminder_rows(rt).values()} == {
        ("dropped", "已过时效（活动已开始），未发送")}


def test_the_service_sends_missed_reminders_as_soon_as_it_starts(rt, fake_api):
    join(rt, "oAlice0001")
    aid = activity(rt, "2026-11-23 10:00")
    sign_up(rt, aid, "oAlice0001")
    rt.clock.set(at(rt, "2026-11-23 09:00"))
    service = SchedulerService(rt).start()
    try:
        wait_for(lambda: reminded(fake_api), 5)
    finally:
        service.stop()
    assert [m["openid"] for m in reminded(fake_api)] == ["oAlice0001"]


def test_members_who_turn_reminders_off_get_none(rt, wechat, fake_api):
    aid = activity(rt, "2026-11-23 10:00")
    wechat.text("oAlice0001", "你好")
    sign_up(rt, aid, "oAlice0001")
    jobs.plan_all(rt)
    assert "已退订全部提醒" in wechat.text("oAlice0001", "退订提醒").text
    assert {r["status"] for r in reminder_rows(rt).values()} == {"cancelled"}
    go(rt, "2026-11-22 10:00")
    assert reminded(fake_api) == []
    wechat.text("oAlice0001", "订阅提醒")
    go(rt, "2026-11-23 08:00")
    assert [m["openid"] for m in reminded(fake_api)] == ["oAlice0001"]


# --- recurring calendar reminders --------------------------------------------------------

def subscribe(rt, openid: str, *topics: str, reminders: bool = True) -> None:
    join(rt, openid)
    for topic in topics:
        members.add_topic(rt.db(), openid, topic, rt.clock.now())
    members.set_reminders(rt.db(), openid, reminders)


def recurring(fake_api) -> list[tuple[str, str]]:
    return [(m["openid"], m["data"]["keyword1"]["value"]) for m in fake_api.inbox()
            if m["template_id"] == REMIND_TPL and m["data"]["first"]["value"] != "活动提醒"]


def test_recurring_reminders_go_to_members_who_chose_them(rt, fake_api):
    rt.clock.set(at(rt, "2026-08-20 10:00"))
    subscribe(rt, "oTijian001", "tijian")
    subscribe(rt, "oAllTopic2", "*")
    subscribe(rt, "oNoTopics3")
    subscribe(rt, "oSilenced4", "tijian", reminders=False)
    subscribe(rt, "oLeftAcct5", "tijian")
    members.touch(rt.db(), "oLeftAcct5", rt.clock.now(), subscribed=False)
    go(rt, "2026-09-01 08:00")
    assert recurring(fake_api) == []  # planned for 09:00
    keys = sorted(r["dedupe_key"] for r in deliveries.with_prefix(rt.db(), "recurring:"))
    assert keys == ["recurring:tijian:2026-09:oAllTopic2", "recurring:tijian:2026-09:oTijian001"]
    go(rt, "2026-09-01 09:00")
    assert sorted(recurring(fake_api)) == [("oAllTopic2", "组织体检"), ("oTijian001", "组织体检")]
    go(rt, "2026-09-15 09:00")  # planning again all month adds nothing
    assert len(recurring(fake_api)) == 2


def test_quarterly_and_alliance_items_start_each_quarter(rt, fake_api, wechat):
    rt.clock.set(at(rt, "2026-03-20 10:00"))
    wechat.text("oFazhi0001", "订阅提醒 青春法治专研")
    subscribe(rt, "oBirthday2", "shengrihui")
    subscribe(rt, "oAllTopic3", "*")
    go(rt, "2026-04-01 09:30")
    got = sorted(recurring(fake_api))
    assert ("oFazhi0001", "实施青年实干家计划") in got
    assert ("oBirthday2", "集体生日会") in got
    assert {name for who, name in got if who == "oFazhi0001"} == {"实施青年实干家计划"}
    assert {name for who, name in got if who == "oAllTopic3"} == {
        "集体生日会", "实施青年实干家计划", "制作社区治理安全科普产品", "举办执法创新交流展示活动",
        "举办智慧执法兴趣班"}
    go(rt, "2026-05-01 09:30")  # May: 疗休养 only, for oAllTopic3
    assert [r for r in recurring(fake_api) if r not in got] == [("oAllTopic3", "组织疗休养")]


def test_unsubscribing_mid_month_cancels_the_pending_reminder(rt, fake_api, wechat):
    rt.clock.set(at(rt, "2026-08-31 10:00"))
    wechat.text("oTijian001", "订阅提醒 体检")
    go(rt, "2026-09-01 07:00")
    assert wechat.text("oTijian001", "退订提醒 体检").text.startswith("已退订“组织体检”")
    [row] = deliveries.with_prefix(rt.db(), "recurring:")
    assert row["status"] == "cancelled"
    go(rt, "2026-09-01 09:00")
    assert recurring(fake_api) == []


# --- chat: 订阅提醒 / 退订提醒 / 我的提醒 ---------------------------------------------------------

def test_subscription_words_in_the_chat(rt, wechat):
    me = "oChatter01"
    reply = wechat.text(me, "订阅提醒").text
    assert reply.startswith("已订阅全部提醒") and "24 小时、2 小时" in reply
    assert members.topics(rt.db(), me) == ["*"]
    assert "已退订“组织体检”的提醒" in wechat.text(me, "退订提醒 体检").text
    assert "tijian" not in members.topics(rt.db(), me) and "shengrihui" in members.topics(rt.db(), me)
    mine = wechat.text(me, "我的提醒").text
    assert "活动提醒：开启" in mine and "集体生日会（每季度）" in mine and "组织体检" not in mine
    assert "组织体检（9月）" in wechat.text(me, "订阅提醒 体检").text
    assert "已退订全部提醒" in wechat.text(me, "退订提醒").text
    assert members.get(rt.db(), me)["reminders"] == 0 and members.topics(rt.db(), me) == []
    assert "活动提醒：已关闭" in wechat.text(me, "我的提醒").text
    reply = wechat.text(me, "订阅提醒 生日会").text
    assert "集体生日会" in reply and "活动提醒也已重新开启" in reply
    assert members.get(rt.db(), me)["reminders"] == 1


@pytest.mark.parametrize("text, expected", [
    ("订阅提醒 火星旅游", "没有找到“火星旅游”"),
    ("订阅提醒 立功竞赛", "全年开展的项目"),
    ("退订提醒 体检", "你没有订阅“组织体检”"),
    ("订阅提醒 青春法治专研", "已订阅「青春法治专研」的 2 个联盟项目提醒"),
])
def test_subscription_replies(wechat, text, expected):
    assert expected in wechat.text("oChatter01", text).text


def test_my_reminders_lists_what_is_coming(rt, wechat):
    wechat.text("oAlice0001", "你好")
    sign_up(rt, activity(rt, "2026-11-23 10:00"), "oAlice0001")
    jobs.plan_all(rt)
    reply = wechat.text("oAlice0001", "我的提醒").text
    assert "即将发送" in reply and "11月22日(周日) 10:00 活动提醒「世纪公园植树」" in reply


# --- one scheduler at a time ----------------------------------------------------------------

def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def notices(rt, openids, tag: str) -> None:
    now = rt.clock.now()
    deliveries.enqueue_many(rt.db(), [
        {"dedupe_key": f"notice:{tag}:{o}", "openid": o, "kind": "notice", "text": f"{tag}",
         "due_at": now} for o in openids], now)


@pytest.fixture
def two_services(make_app):
    """Two processes' worth of scheduler on one database (each its own Runtime)."""
    rts = [make_app(send_rate=0).extensions["chengcheng"] for _ in range(2)]
    services = [SchedulerService(rt, lease_ttl=timedelta(seconds=2), renew_seconds=0.2)
                for rt in rts]
    yield rts, services
    for service in services:
        service.stop()


def test_two_schedulers_never_double_send_and_the_standby_takes_over(two_services, fake_api):
    (rt, _), services = two_services
    openids = [f"oMember{i:05d}" for i in range(40)]
    join(rt, *openids)
    for service in services:
        service.start()
    assert sum(s.leader for s in services) == 1
    leader, standby = sorted(services, key=lambda s: not s.leader)
    notices(rt, openids, "first")
    wait_for(lambda: len(fake_api.inbox()) >= 40, 10)
    assert standby.dispatcher.stats["sent"] == 0

    leader._aps.pause_job("lease")  # the leader hangs: it stops renewing …
    leases.acquire(rt.db(), LEASE, leader.owner, timedelta(seconds=-1), rt.clock.now())  # … expired
    wait_for(lambda: standby.leader and not leader.leader, 5)
    notices(rt, openids, "second")
    wait_for(lambda: len(fake_api.inbox()) >= 80, 10)
    time.sleep(0.5)
    assert Counter(m["openid"] for m in fake_api.inbox()) == Counter(openids * 2)
    assert standby.dispatcher.stats["sent"] == 40 and leader.dispatcher.stats["sent"] == 40
    assert leases.holder(rt.db(), LEASE, rt.clock.now()) == standby.owner


def test_a_stopped_leader_hands_over(two_services, fake_api):
    (rt, _), services = two_services
    join(rt, "oMember00001")
    for service in services:
        service.start()
    leader, standby = sorted(services, key=lambda s: not s.leader)
    leader.stop()
    wait_for(lambda: standby.leader, 3)
    notices(rt, ["oMember00001"], "after")
    wait_for(lambda: fake_api.inbox(), 5)


def test_a_successor_replaces_a_leader_that_died_on_this_host_at_once(rt, fake_api):
    join(rt, "oMember00001", "oMember00002")
    dead = subprocess.Popen(["true"])
    dead.wait()
    host, ns, boot = claims.this_process().split(":")[:3]
    owner = f"{host}:{ns}:{boot}:{dead.pid}::dead00"  # a run of a process that has exited
    assert leases.acquire(rt.db(), LEASE, owner, timedelta(minutes=5), rt.clock.now())
    notices(rt, ["oMember00001", "oMember00002"], "x")
    deliveries.claim_due(rt.db(), rt.clock.now(), 10, CLAIM_FOR, owner)  # in flight when it died
    service = SchedulerService(rt).start()
    try:
        assert service.leader
        wait_for(lambda: len(fake_api.inbox()) == 2, 5)
    finally:
        service.stop()


def test_a_live_leader_elsewhere_is_waited_for(rt):
    leases.acquire(rt.db(), LEASE, "otherhost:4026531836:123:abcdef", timedelta(minutes=5),
                   rt.clock.now())
    service = SchedulerService(rt)
    assert service.renew() is False and not service.leader


def test_misfire_grace_is_minutes_not_a_second(rt):
    service = SchedulerService(rt).start()
    try:
        assert service._aps.get_job("plan").misfire_grace_time == MISFIRE_GRACE_SECONDS >= 60
        assert service._aps.get_job("lease").misfire_grace_time == MISFIRE_GRACE_SECONDS
    finally:
        service.stop()


def test_the_web_app_never_schedules(app, rt, wechat):
    wechat.text("oMember00001", "帮助")
    assert leases.holder(rt.db(), LEASE, rt.clock.now()) is None
    assert not [t for t in threading.enumerate() if t.name == "dispatcher"]
