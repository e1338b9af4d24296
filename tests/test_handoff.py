"""人工: a member reaches a person through the webhook; staff answer within WeChat's
customer-service rules (window and cap, against the fake WeChat API); `bot.py inbox`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from bot import cli
from clock import to_db
from handlers import handoff
from scheduler import handoff as service
from settings import Settings, SettingsError
from storage import audit, deliveries, members
from storage import handoff as store
from tests.conftest import APPID, SECRET, TOKEN, dispatch_all

MEMBER = "oMemberHandoff01"
ORGANISER = "oOrganiser000001"
UNKNOWN = "宿舍楼的热水器坏了找谁修"  # the knowledge base does not know this
UNKNOWN_2 = "机关食堂几点开饭"
CALM = {"send_rate": 0, "reply_budget": 60}  # a loaded test machine must not defer replies


@pytest.fixture
def app(make_app):
    return make_app(**CALM, wechat_template_notice="TPL_NOTICE")


@pytest.fixture
def run(settings, fake_api):
    """`bot.py …` on the test's data directory, as a script would call it."""
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": fake_api.url, "WECHAT_TOKEN": TOKEN,
           "BOT_FAKE_NOW": settings.fake_now, "BOT_SEND_RATE": "0", "BOT_LOG_LEVEL": "WARNING",
           "WECHAT_TEMPLATE_NOTICE": "TPL_NOTICE"}

    def invoke(*args: str):
        return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)
    return invoke


def conversation(rt, openid=MEMBER):
    return store.open_for(rt.db(), openid)


def later(rt, **delta):
    rt.clock.set(rt.clock.now() + timedelta(**delta))


# ---- members -------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["人工", "转人工", "找工作人员", "人工！"])
def test_asking_for_a_person_opens_a_conversation(wechat, rt, word):
    reply = wechat.text(MEMBER, word).text
    assert reply.startswith("已通知工作人员")
    # 2026-11-21 10:00 is a Saturday: the member is told when staff are back
    assert "非工作时间" in reply and "11月23日（周一）9:00" in reply
    assert conversation(rt)["waiting_since"] is not None
    again = wechat.text(MEMBER, "人工").text
    assert again.startswith("已通知工作人员") and len(store.list_open(rt.db())) == 1


def test_within_working_hours_the_reply_says_soon(make_app, wechat):
    app = make_app(**CALM, fake_now="2026-11-23 10:00")  # a Monday
    from simulator.client import WeChatClient

    reply = WeChatClient(TOKEN, app=app).text(MEMBER, "人工").text
    assert "现在是工作时间（周一至周五 9:00–17:30），工作人员一般会尽快回复" in reply


def test_the_menu_button_opens_a_conversation(wechat, rt):
    key = next(k for k, words in rt.menu_keys.items() if words == "人工")
    assert wechat.event(MEMBER, "CLICK", key).text.startswith("已通知工作人员")
    assert conversation(rt) is not None


def test_two_declines_in_a_row_offer_a_person(wechat):
    first = wechat.text(MEMBER, UNKNOWN).text
    assert "没有找到" in first and handoff.OFFER not in first
    second = wechat.text(MEMBER, UNKNOWN_2).text
    assert "没有找到" in second and second.endswith(handoff.OFFER)


def test_an_answer_between_two_declines_resets_the_count(wechat):
    wechat.text(MEMBER, UNKNOWN)
    assert "没有找到" not in wechat.text(MEMBER, "体检几月").text
    assert handoff.OFFER not in wechat.text(MEMBER, UNKNOWN_2).text


def test_while_open_commands_and_confident_answers_still_work(wechat, rt):
    wechat.text(MEMBER, "人工")
    rt.db().execute("UPDATE handoffs SET waiting_since = NULL")  # as if staff had answered
    assert "活动" in wechat.text(MEMBER, "我的报名").text
    assert "体检" in wechat.text(MEMBER, "体检几月").text
    assert conversation(rt)["waiting_since"] is None  # answered by the bot: nobody waits
    forwarded = wechat.text(MEMBER, UNKNOWN).text
    assert forwarded == handoff.ACK and "没有找到" not in forwarded
    assert conversation(rt)["waiting_since"] is not None


def test_the_member_ends_it(wechat, rt):
    wechat.text(MEMBER, "人工")
    assert wechat.text(MEMBER, "结束人工").text == handoff.CLOSED
    assert conversation(rt) is None
    assert wechat.text(MEMBER, "结束人工").text == handoff.NOT_OPEN
    assert "没有找到" in wechat.text(MEMBER, UNKNOWN).text  # declines are the bot's again


def test_silence_for_the_timeout_ends_it(make_app, rt, wechat):
    wechat.text(MEMBER, "人工")
    later(rt, hours=rt.settings.handoff_timeout_hours, minutes=1)
    assert "没有找到" in wechat.text(MEMBER, UNKNOWN).text
    [row] = store.recently_closed(rt.db())
    assert row["close_reason"] == store.TIMEOUT_REASON


def test_a_member_message_keeps_it_alive(rt, wechat):
    wechat.text(MEMBER, "人工")
    later(rt, hours=rt.settings.handoff_timeout_hours - 1)
    wechat.text(MEMBER, UNKNOWN)
    later(rt, hours=2)
    assert wechat.text(MEMBER, UNKNOWN_2).text == handoff.ACK


def test_organisers_who_opted_in_are_alerted(wechat, rt, fake_api):
    wechat.text(ORGANISER, "你好")
    members.set_role(rt.db(), ORGANISER, "organiser")
    assert wechat.text(MEMBER, "订阅人工提醒").text == handoff.ORGANISERS_ONLY
    assert "已订阅人工提醒" in wechat.text(ORGANISER, "订阅人工提醒").text
    wechat.text(MEMBER, "人工")
    wechat.text(MEMBER, "人工")  # a second 人工 does not alert again
    dispatch_all(rt)
    [alert] = fake_api.inbox(ORGANISER)
    assert alert["content"].startswith("有成员需要人工回复")
    assert fake_api.inbox(MEMBER) == []
    assert wechat.text(ORGANISER, "退订人工提醒").text == "已退订人工提醒。"
    wechat.text(MEMBER, "结束人工")
    wechat.text(MEMBER, "人工")
    dispatch_all(rt)
    assert len(fake_api.inbox(ORGANISER)) == 1


@pytest.mark.parametrize("value", ["weekdays", "1-5 18:00-09:00", "8 09:00-17:00"])
def test_a_bad_working_hours_setting_is_refused_at_start(value):
    with pytest.raises(SettingsError, match="BOT_HANDOFF_HOURS"):
        Settings.from_env({"BOT_HANDOFF_HOURS": value})


def test_the_timeout_must_be_positive():
    with pytest.raises(SettingsError, match="BOT_HANDOFF_TIMEOUT"):
        Settings.from_env({"BOT_HANDOFF_TIMEOUT": "0"})


# ---- staff replies: WeChat's window and cap -------------------------------------------

def test_a_reply_goes_out_as_a_customer_service_message(wechat, rt, fake_api):
    wechat.text(MEMBER, "人工")
    delivery = service.reply(rt, conversation(rt), "你好，热水器的事我们已联系后勤。", "李书记")
    dispatch_all(rt)
    [msg] = fake_api.inbox(MEMBER)
    assert (msg["kind"], msg["content"]) == ("custom", "你好，热水器的事我们已联系后勤。")
    assert conversation(rt)["waiting_since"] is None
    [line] = [a for a in audit.recent(rt.db()) if a["action"] == "人工回复"]
    assert line["actor"] == "李书记" and str(delivery) in line["detail"]
    assert "热水器" not in (line["detail"] or "")


def test_the_cap_counts_queued_replies_and_then_offers_the_template(make_app, fake_api):
    from simulator.client import WeChatClient

    app = make_app(**CALM, wechat_cs_max_messages=2, wechat_template_notice="TPL_NOTICE")
    rt = app.extensions["chengcheng"]
    WeChatClient(TOKEN, app=app).text(MEMBER, "人工")
    service.reply(rt, conversation(rt), "一", "李书记")
    assert service.allowance(rt, MEMBER).messages_left == 1
    service.reply(rt, conversation(rt), "二", "李书记")
    allowed = service.allowance(rt, MEMBER)
    assert not allowed.custom_ok and allowed.template
    with pytest.raises(service.HandoffError, match="可以改用通知模板"):
        service.reply(rt, conversation(rt), "三", "李书记")
    service.reply(rt, conversation(rt), "三", "李书记", template=True)
    dispatch_all(rt)
    assert [m["kind"] for m in fake_api.inbox(MEMBER)] == ["custom", "custom", "template"]
    assert service.allowance(rt, MEMBER).messages_left == 0


def test_outside_the_window_only_the_template_is_offered(wechat, rt, fake_api):
    wechat.text(MEMBER, "人工")
    later(rt, hours=47, minutes=59)
    assert service.allowance(rt, MEMBER).custom_ok
    assert service.allowance(rt, MEMBER).time_left == "1 分钟"
    later(rt, minutes=2)
    allowed = service.allowance(rt, MEMBER)
    assert not allowed.custom_ok and allowed.window.hours_left == 0
    assert "48 小时" in allowed.why_not
    with pytest.raises(service.HandoffError):
        service.reply(rt, conversation(rt), "您好", "李书记")
    service.reply(rt, conversation(rt), "您好，我们周一联系您。", "李书记", template=True)
    dispatch_all(rt)
    [msg] = fake_api.inbox(MEMBER)
    assert msg["kind"] == "template" and msg["template_id"] == "TPL_NOTICE"
    assert msg["data"]["remark"]["value"] == "您好，我们周一联系您。"


def test_a_member_message_opens_a_new_window(wechat, rt):
    wechat.text(MEMBER, "人工")
    later(rt, hours=20)
    wechat.text(MEMBER, UNKNOWN)
    later(rt, hours=30)
    assert service.allowance(rt, MEMBER).window.hours_left == pytest.approx(18, abs=0.05)


def test_wechat_refusing_the_customer_service_message_falls_to_the_template(wechat, rt,
                                                                             fake_api):
    wechat.text(MEMBER, "人工")
    fake_api.inject("/cgi-bin/message/custom/send", errcode=45047)
    service.reply(rt, conversation(rt), "您好", "李书记")
    dispatch_all(rt)
    assert [m["kind"] for m in fake_api.inbox(MEMBER)] == ["template"]


def test_a_form_sent_twice_replies_once(wechat, rt):
    wechat.text(MEMBER, "人工")
    assert service.reply(rt, conversation(rt), "您好", "李书记", nonce="abc") is not None
    assert service.reply(rt, conversation(rt), "您好", "李书记", nonce="abc") is None
    assert len(deliveries.with_prefix(rt.db(), store.REPLY_PREFIX)) == 1


@pytest.mark.parametrize("text, words", [("", "不能为空"), ("字" * 601, "过长")])
def test_empty_or_long_replies_are_refused(wechat, rt, text, words):
    wechat.text(MEMBER, "人工")
    with pytest.raises(service.HandoffError, match=words):
        service.reply(rt, conversation(rt), text, "李书记")


# ---- bot.py inbox ---------------------------------------------------------------------

def test_cli_lists_replies_and_closes(wechat, rt, run, fake_api):
    assert "没有等待人工回复的对话" in run("inbox").output
    wechat.text(MEMBER, "人工")
    wechat.text(MEMBER, UNKNOWN)
    listing = run("inbox").output
    assert MEMBER in listing and "等待" in listing and UNKNOWN in listing
    result = run("inbox", "reply", MEMBER, "您好，已转后勤处理。")
    assert result.exit_code == 0 and "已加入发件箱" in result.output
    dispatch_all(rt)
    assert fake_api.inbox(MEMBER)[-1]["content"] == "您好，已转后勤处理。"
    assert "命令行" in [a["actor"] for a in audit.recent(rt.db()) if a["action"] == "人工回复"]
    assert run("inbox", "close", MEMBER).exit_code == 0
    assert conversation(rt) is None
    again = run("inbox", "close", MEMBER)
    assert again.exit_code != 0 and "没有进行中的人工对话" in again.output


def test_cli_refuses_outside_the_window_and_offers_the_template(wechat, rt, run, fake_api):
    wechat.text(MEMBER, "人工")
    rt.db().execute("UPDATE members SET last_seen = ?",  # 49 hours ago: the window has closed
                    [to_db(rt.clock.now() - timedelta(hours=49))])
    refused = run("inbox", "reply", MEMBER, "您好")
    assert refused.exit_code != 0 and "--template" in refused.output
    assert run("inbox", "reply", MEMBER, "您好", "--template").exit_code == 0
    dispatch_all(rt)
    assert fake_api.inbox(MEMBER)[0]["kind"] == "template"


def test_cli_reply_to_a_member_without_a_conversation(run):
    result = run("inbox", "reply", "oNobody000001", "您好")
    assert result.exit_code != 0 and "没有进行中的人工对话" in result.output
