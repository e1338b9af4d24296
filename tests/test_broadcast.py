"""Broadcasts: `bot.py broadcast` / `deliveries`, audiences, and `通知` from an organiser's chat."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from click.testing import CliRunner

from activities import service as acts
from bot import cli
from clock import parse_local
from handlers import broadcast as chat
from scheduler import broadcast
from storage import deliveries, members
from tests.conftest import APPID, SECRET, TOKEN, dispatch_all


@pytest.fixture
def app(make_app):
    return make_app(send_rate=0)


@pytest.fixture
def run(settings, fake_api):
    """Run a bot.py command as an organiser would, on the test's data directory."""
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": fake_api.url, "WECHAT_TOKEN": TOKEN,
           "BOT_FAKE_NOW": settings.fake_now, "BOT_SEND_RATE": "0", "BOT_LOG_LEVEL": "WARNING"}

    def invoke(*args: str):
        return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)
    return invoke


def people(rt, *openids: str, unit: str | None = None) -> list[str]:
    for openid in openids:
        members.touch(rt.db(), openid, rt.clock.now())
        if unit:
            members.set_profile(rt.db(), openid, "张三", unit, None, rt.clock.now())
    return list(openids)


def batch_of(output: str) -> str:
    return output.split("批次 ")[1].split()[0]


def test_broadcast_to_all_skips_members_who_unfollowed(rt, run, fake_api):
    here = people(rt, "oMember00001", "oMember00002", "oMember00003")
    people(rt, "oGone000004")
    members.touch(rt.db(), "oGone000004", rt.clock.now(), subscribed=False)
    result = run("broadcast", "--text", "周六志愿活动改到上午9点集合")
    assert result.exit_code == 0, result.output
    assert "全部成员，共 3 人" in result.output
    batch = batch_of(result.output)
    assert deliveries.progress(rt.db(), batch) == {"pending": 3}
    assert "已发送 3" in run("deliveries", "--send", "--batch", batch).output
    assert Counter(m["openid"] for m in fake_api.inbox()) == Counter(here)
    assert fake_api.inbox()[0]["content"] == "【通知】周六志愿活动改到上午9点集合"
    listing = run("deliveries").output
    assert batch in listing and "共 3：已发送 3" in listing


@pytest.mark.parametrize("to", ["group:青春法治专研", "group:法治组", "group:fazhi", "共同体:法治专研"])
def test_broadcast_to_a_group_reaches_its_units(rt, run, to):
    people(rt, "oHongkou001", unit="虹口区城管执法局四川北路中队")
    people(rt, "oXuhui00002", unit="徐汇区城管执法局")
    people(rt, "oZiMaoQu003", unit="自贸区城管执法局")
    people(rt, "oJingan0004", unit="静安区城管执法局")
    people(rt, "oNoUnit0005")
    result = run("broadcast", "--text", "本季度案例研讨报名开始", "--to", to)
    assert "「青春法治专研」共同体，共 3 人" in result.output
    rows = deliveries.with_prefix(rt.db(), f"notice:{batch_of(result.output)}:")
    assert sorted(r["openid"] for r in rows) == ["oHongkou001", "oXuhui00002", "oZiMaoQu003"]


def test_broadcast_to_an_activitys_live_sign_ups(rt, run):
    people(rt, "oAlice0001", "oBobby0002", "oCarol0003", "oDavid0004")
    aid = acts.create_activity(rt.db(), title="植树", now=rt.clock.now(), capacity=1,
                               start=rt.clock.now() + timedelta(days=2))
    for openid in ("oAlice0001", "oBobby0002", "oCarol0003"):
        acts.sign_up(rt.db(), aid, openid, rt.clock.now())
    signup = [s for s in acts.signup_list(rt.db(), aid) if s["openid"] == "oCarol0003"][0]
    acts.cancel_signup(rt.db(), signup["id"], rt.clock.now(), rt.settings.tz)
    result = run("broadcast", "--text", "集合地点改到2号门", "--to", f"activity:{aid}")
    assert "活动「植树」的报名成员，共 2 人" in result.output
    rows = deliveries.with_prefix(rt.db(), f"notice:{batch_of(result.output)}:")
    assert sorted(r["openid"] for r in rows) == ["oAlice0001", "oBobby0002"]


def test_a_scheduled_broadcast_waits_for_its_time(rt, run, fake_api):
    people(rt, "oMember00001")
    result = run("broadcast", "--text", "明早8点出发", "--at", "2026-11-21 18:30")
    assert "2026年11月21日(周六) 18:30发送" in result.output
    run("deliveries", "--send")
    assert fake_api.inbox() == []
    rt.clock.set(parse_local("2026-11-21 18:31", rt.settings.tz))
    dispatch_all(rt)
    assert [m["content"] for m in fake_api.inbox()] == ["【通知】明早8点出发"]


@pytest.mark.parametrize("args, message", [
    (["--text", "  "], "通知内容不能为空"),
    (["--text", "长" * 601], "通知内容过长：601 字，最多 600 字"),
    (["--text", "x", "--at", "2026-11-20 09:00"], "已经过去"),
    (["--text", "x", "--at", "明天早上"], "发送时间格式应为 YYYY-MM-DD HH:MM"),
    (["--text", "x", "--to", "group:火星组"], "没有叫“火星组”的共同体。可选：青春法治专研"),
    (["--text", "x", "--to", "activity:999"], "没有编号为 999 的活动"),
    (["--text", "x", "--to", "activity:abc"], "活动编号应是数字"),
    (["--text", "x", "--to", "everyone"], "看不懂发送范围“everyone”"),
    (["--text", "x", "--to", "group:青春志愿服务"], "「青春志愿服务」共同体中没有关注公众号的成员"),
])
def test_bad_broadcasts_get_a_clear_chinese_error(rt, run, args, message):
    people(rt, "oMember00001")
    result = run("broadcast", *args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert deliveries.progress(rt.db()) == {}


def test_deliveries_shows_failures_with_their_reasons(rt, run, fake_api):
    people(rt, "oMember00001", "oMember00002", "oMember00003")
    fake_api.unsubscribed.add("oMember00002")
    people(rt, "oOldTimer04")
    members.touch(rt.db(), "oOldTimer04", rt.clock.now() - timedelta(days=3))
    batch = batch_of(run("broadcast", "--text", "通知内容").output)
    output = run("deliveries", "--send", "--batch", batch).output
    assert "共 4：已发送 2，失败 1，无法送达 1" in output
    assert "失败 1：43004 成员已取消关注" in output
    assert "无法送达 1：无可用渠道：成员超过 48 小时未互动" in output


def test_queueing_the_same_batch_twice_adds_nobody_twice(rt):
    people(rt, "oMember00001", "oMember00002")
    first = broadcast.queue(rt, "内容", batch="b-fixed")
    again = broadcast.queue(rt, "内容", batch="b-fixed")
    assert first.count == again.count == 2
    assert deliveries.progress(rt.db(), "b-fixed") == {"pending": 2}


@pytest.mark.parametrize("command", ["broadcast", "deliveries", "worker"])
def test_every_command_has_help(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0 and len(result.output) > 80


# --- 通知 in the chat ------------------------------------------------------------------------

@pytest.fixture
def organiser(rt, wechat):
    wechat.text("oOrganiser1", "你好")
    members.set_role(rt.db(), "oOrganiser1", "organiser")
    people(rt, "oMember00001", "oMember00002")
    return "oOrganiser1"


def test_an_organiser_confirms_and_the_notice_goes_out(rt, wechat, organiser, fake_api):
    reply = wechat.text(organiser, "通知 周六志愿活动改到上午9点集合").text
    assert reply.startswith("将向全部成员共 3 人发送以下通知：")
    assert "周六志愿活动改到上午9点集合" in reply and "回复“确认”发送" in reply
    assert deliveries.progress(rt.db()) == {}
    sent = wechat.text(organiser, "确认").text
    assert sent.startswith("已开始发送：全部成员共 3 人")
    dispatch_all(rt)
    assert sorted(m["openid"] for m in fake_api.inbox()) == [
        "oMember00001", "oMember00002", organiser]
    again = wechat.text(organiser, "确认").text  # the dialog is over: nothing more is sent
    assert not again.startswith("已开始发送")
    assert sum(deliveries.progress(rt.db()).values()) == 3


def test_an_organiser_can_cancel(rt, wechat, organiser):
    wechat.text(organiser, "通知 明天停电")
    assert wechat.text(organiser, "取消").text == "已取消，通知没有发送。"
    assert deliveries.progress(rt.db()) == {}


def test_an_unconfirmed_notice_expires(rt, wechat, organiser):
    wechat.text(organiser, "通知 明天停电")
    rt.clock.set(rt.clock.now() + timedelta(minutes=rt.settings.dialog_timeout_minutes + 1))
    assert wechat.text(organiser, "确认").text.startswith("确认已超时，通知没有发送")
    assert deliveries.progress(rt.db()) == {}


def test_members_cannot_broadcast(rt, wechat):
    assert wechat.text("oMember00009", "通知 大家好").text == chat.NOT_ORGANISER
    assert wechat.text("oMember00009", "确认").text != "已开始发送"
    assert deliveries.progress(rt.db()) == {}


def test_an_empty_notice_shows_how(wechat, organiser):
    assert wechat.text(organiser, "通知").text == chat.EMPTY
