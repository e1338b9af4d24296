"""Events by WeChat's rules (issue 12 item 6), through the real webhook: only what a member does
opens the customer-service window or makes a member; a follow with any EventKey is a follow;
TEMPLATESENDJOBFINISH lands on the outbox row WeChat reports, visible in the CLI and console."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from click.testing import CliRunner

from bot import cli
from clock import from_db
from scheduler.broadcast import queue
from simulator.client import ACCOUNT, cdata, event_xml
from storage import deliveries, members
from tests.conftest import APPID, SECRET, TOKEN, dispatch_all
from wechat.messages import parse

OLD = "oOldMember001"  # a member last seen three days ago
STRANGER = "oStranger0001"  # never wrote to the bot


def notice_xml(openid: str, event: str, extra: str = "", key: str | None = None) -> str:
    key_xml = f"<EventKey>{cdata(key)}</EventKey>" if key is not None else ""
    return (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><FromUserName>{cdata(openid)}"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event>{cdata(event)}</Event>{key_xml}{extra}</xml>")


NOT_MEMBER_ACTIONS = {
    "LOCATION": notice_xml("{o}", "LOCATION", "<Latitude>31.2304</Latitude><Longitude>121.4737"
                                             "</Longitude><Precision>65.0</Precision>"),
    "VIEW": notice_xml("{o}", "VIEW", key="https://example.org/page"),
    "TEMPLATESENDJOBFINISH": notice_xml("{o}", "TEMPLATESENDJOBFINISH",
                                        "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>"),
    "MASSSENDJOBFINISH": notice_xml("{o}", "MASSSENDJOBFINISH",
                                    "<MsgID>1988</MsgID><Status><![CDATA[send success]]></Status>"
                                    "<TotalCount>100</TotalCount><SentCount>98</SentCount>"),
    "subscribe_msg_popup_event": notice_xml("{o}", "subscribe_msg_popup_event",
                                            "<SubscribeMsgPopupEvent><List><TemplateId>t1"
                                            "</TemplateId><SubscribeStatusString>accept"
                                            "</SubscribeStatusString></List>"
                                            "</SubscribeMsgPopupEvent>"),
    "qualification_verify_success": notice_xml("{o}", "qualification_verify_success",
                                               "<ExpiredTime>1442401156</ExpiredTime>"),
}


@pytest.fixture
def old_member(rt):
    members.touch(rt.db(), OLD, rt.clock.now() - timedelta(days=3))
    return members.get(rt.db(), OLD)


@pytest.mark.parametrize("event", sorted(NOT_MEMBER_ACTIONS))
def test_notices_open_no_window_and_make_no_member(wechat, rt, old_member, event):
    xml = NOT_MEMBER_ACTIONS[event]
    assert not parse(xml.format(o=OLD)).is_member_action
    for openid in (OLD, STRANGER):
        result = wechat.post_xml(xml.format(o=openid))
        assert result.status == 200 and result.text is None
    assert members.get(rt.db(), STRANGER) is None
    assert members.get(rt.db(), OLD)["last_seen"] == old_member["last_seen"]


@pytest.mark.parametrize("event,key", [("CLICK", "SIGNUP"), ("scancode_push", "SCAN1"),
                                       ("scancode_waitmsg", "SCAN2"), ("subscribe", None),
                                       ("SCAN", "123")])
def test_what_a_member_does_opens_the_window(wechat, rt, old_member, event, key):
    wechat.event(OLD, event, key)
    seen = from_db(members.get(rt.db(), OLD)["last_seen"])
    assert rt.clock.now() - seen < timedelta(minutes=1)


def test_a_location_report_does_not_let_the_bot_use_customer_service(make_app, fake_api):
    app = make_app(wechat_template_notice="tmpl-notice", send_rate=0)
    rt = app.extensions["chengcheng"]
    members.touch(rt.db(), OLD, rt.clock.now() - timedelta(days=3))
    from simulator.client import WeChatClient

    WeChatClient(TOKEN, app=app).post_xml(NOT_MEMBER_ACTIONS["LOCATION"].format(o=OLD))
    now = rt.clock.now()
    deliveries.enqueue(rt.db(), dedupe_key="t:1", openid=OLD, kind="notice", text="明天集合",
                       due_at=now, now=now)
    dispatch_all(rt)
    assert [c["path"] for c in fake_api.calls if "message" in c["path"]] == \
        ["/cgi-bin/message/template/send"]


@pytest.mark.parametrize("key", ["scanbarcode|EAN_13|6901234567892", "scanimage|abcdef",
                                 "qrscene_123", "last_trade_no_4200000001", ""])
def test_a_follow_with_any_event_key_welcomes_and_resubscribes(wechat, rt, key):
    wechat.event(OLD, "subscribe")
    wechat.event(OLD, "unsubscribe")
    assert members.get(rt.db(), OLD)["subscribed"] == 0
    reply = wechat.post_xml(event_xml(OLD, "subscribe", key, create_time=int(time.time()) + 5))
    assert reply.text.startswith("欢迎关注诚城青年助手")
    member = members.get(rt.db(), OLD)
    assert member["subscribed"] == 1 and member["unsubscribed_at"] is None


# --- TEMPLATESENDJOBFINISH on the outbox row -----------------------------------------------

def report_xml(openid: str, msgid, status: str) -> str:
    return notice_xml(openid, "TEMPLATESENDJOBFINISH",
                      f"<MsgID>{msgid}</MsgID><Status>{cdata(status)}</Status>")


@pytest.fixture
def template_app(make_app):
    return make_app(wechat_template_notice="tmpl-notice", send_rate=0)


def test_delivery_reports_are_kept_on_the_row_and_shown(template_app, fake_api, settings):
    from simulator.client import WeChatClient
    from tests.test_console import Console, add_admin

    rt = template_app.extensions["chengcheng"]
    wechat = WeChatClient(TOKEN, app=template_app)
    people = ["oReport00001", "oReport00002", "oReport00003", "oReport00004"]
    for openid in people:  # followed long ago: only template messages reach them
        members.touch(rt.db(), openid, rt.clock.now() - timedelta(days=5))
    batch = queue(rt, "周六上午9点在三楼集合，请穿志愿者马甲。", "all").batch
    dispatch_all(rt)
    rows = {r["openid"]: r for r in deliveries.with_prefix(rt.db(), f"notice:{batch}:")}
    sent = {m["openid"]: m["msgid"] for m in fake_api.inbox()}
    assert {o: r["wechat_msgid"] for o, r in rows.items()} == {o: str(m) for o, m in sent.items()}

    statuses = ["success", "failed:user block", "failed: system failed"]
    for openid, status in zip(people, statuses):
        assert wechat.post_xml(report_xml(openid, sent[openid], status)).text is None
    wechat.post_xml(report_xml(people[3], sent[people[0]], "success"))  # someone else's msgid
    wechat.post_xml(report_xml(people[3], "not-a-number", "success"))
    rows = {r["openid"]: r for r in deliveries.with_prefix(rt.db(), f"notice:{batch}:")}
    assert [rows[o]["report"] for o in people] == statuses + [None]
    assert all(rows[o]["status"] == "sent" for o in people)

    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": fake_api.url,
           "BOT_FAKE_NOW": settings.fake_now, "BOT_LOG_LEVEL": "WARNING"}
    out = CliRunner(env=env).invoke(cli, ["deliveries", "--batch", batch]).output
    assert "模板消息送达回执（TEMPLATESENDJOBFINISH）" in out
    for words in ("微信确认送达 1", "成员拒收（已关闭模板消息） 1", "微信系统原因未送达 1",
                  "微信尚未回报 1"):
        assert words in out

    add_admin(rt, "组织者乙", "organiser")
    organiser = Console(template_app)
    assert organiser.login("组织者乙").status_code == 302
    page = organiser.get(f"/admin/broadcasts/{batch}").get_data(as_text=True)
    assert "模板消息送达回执" in page and "成员拒收（已关闭模板消息）" in page


def test_a_resent_row_forgets_the_old_report(template_app, fake_api):
    rt = template_app.extensions["chengcheng"]
    members.touch(rt.db(), OLD, rt.clock.now() - timedelta(days=5))
    now = rt.clock.now()
    deliveries.enqueue(rt.db(), dedupe_key="t:2", openid=OLD, kind="notice", text="x",
                       due_at=now, now=now)
    dispatch_all(rt)
    row = deliveries.get(rt.db(), "t:2")
    deliveries.record_report(rt.db(), row["wechat_msgid"], OLD, "failed: system failed", now)
    deliveries.mark_sent(rt.db(), row["id"], "template", now, "42")
    row = deliveries.get(rt.db(), "t:2")
    assert (row["wechat_msgid"], row["report"]) == ("42", None)
