"""Scan to check in (issue 12 item 1): the activity page's WeChat QR code (QR_STR_SCENE
`checkin:<code>`, made with /cgi-bin/qrcode/create and shown from showqrcode on the fake WeChat
API), and SCAN / follow-through-QR events that check in by 签到's rules."""
from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest

from activities import service
from activities.qr import code_from_scene
from storage import members

ZHANG = "oZhangSan0001"
LI = "oLiSi00000002"
NEWBIE = "oNewFollower1"


@pytest.fixture
def activity(rt, db):
    now = rt.clock.now()
    return service.create_activity(db, title="社区青年志愿服务日", now=now,
                                   start=now + timedelta(days=1),
                                   end=now + timedelta(days=1, hours=3),
                                   location="长寿路街道市民驿站", hours=3)


def signed_up(wechat, openid: str, name: str = "张三") -> None:
    wechat.text(openid, f"绑定 {name} 虹口区城管执法局")
    assert wechat.text(openid, "报名 志愿服务日").text.startswith("报名成功")


_ticks = itertools.count(int(time.time()))


def scan(wechat, openid: str, event: str, key: str):
    """One scan; each with its own CreateTime (the same one would be WeChat retrying)."""
    return wechat.event(openid, event, key, create_time=next(_ticks))


def scene_of(fake_api) -> str:
    [qr] = fake_api.qr_codes
    return qr["scene"]


def at_start(rt, db, activity_id: int, minutes: float) -> None:
    start = service.start_of(service.get_activity(db, activity_id))
    rt.clock.set(start + timedelta(minutes=minutes))


def test_the_activity_page_shows_a_wechat_qr_code_that_lives_as_long_as_check_in(
        organiser, rt, db, fake_api, activity):
    page = organiser.get(f"/admin/activities/{activity}").get_data(as_text=True)
    code = service.get_activity(db, activity)["checkin_code"]
    [qr] = fake_api.qr_codes
    assert (qr["action"], qr["scene"]) == ("QR_STR_SCENE", f"checkin:{code}")
    assert abs(qr["expire_seconds"] - (24 + 3 + 2) * 3600) <= 5  # until check-in closes
    [create] = fake_api.calls_to("/cgi-bin/qrcode/create")
    assert create["json"]["action_name"] == "QR_STR_SCENE"
    assert 'class="qr-img"' in page and code in page

    image = organiser.get(f"/admin/activities/{activity}/qr.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data.startswith(b"\x89PNG")
    [shown] = fake_api.calls_to("/cgi-bin/showqrcode")
    assert shown["query"]["ticket"] == qr["ticket"]

    printable = organiser.get(f"/admin/activities/{activity}/qr").get_data(as_text=True)
    assert "社区青年志愿服务日" in printable and 'class="qr-img"' in printable
    assert len(fake_api.calls_to("/cgi-bin/qrcode/create")) == 1  # made once, then reused


def test_scanning_checks_in_by_the_same_rules_as_typing_the_code(organiser, wechat, rt, db,
                                                                  fake_api, activity):
    organiser.get(f"/admin/activities/{activity}")
    scene = scene_of(fake_api)
    signed_up(wechat, ZHANG)
    assert scan(wechat, ZHANG, "SCAN", scene).text.startswith("签到还没开始")
    at_start(rt, db, activity, -30)
    reply = scan(wechat, ZHANG, "SCAN", scene).text
    assert reply.startswith("签到成功：「社区青年志愿服务日」，记志愿时长 3 小时")
    assert service.signup_list(db, activity)[0]["checked_in_at"] is not None
    assert scan(wechat, ZHANG, "SCAN", scene).text.startswith("你已经签到过了")


def test_a_scanner_who_has_not_signed_up_is_told_how(organiser, wechat, rt, db, fake_api,
                                                     activity):
    organiser.get(f"/admin/activities/{activity}")
    at_start(rt, db, activity, -30)
    wechat.text(LI, "帮助")
    reply = scan(wechat, LI, "SCAN", scene_of(fake_api)).text
    assert reply == ("你还没有报名「社区青年志愿服务日」，不能签到。"
                     "先回复“报名 社区青年志愿服务日”报名，报名确认后再扫码签到。")


def test_following_through_the_qr_code_welcomes_and_checks_in(organiser, wechat, rt, db,
                                                              fake_api, activity):
    organiser.get(f"/admin/activities/{activity}")
    signed_up(wechat, ZHANG)
    wechat.event(ZHANG, "unsubscribe")
    at_start(rt, db, activity, -10)
    reply = scan(wechat, ZHANG, "subscribe", "qrscene_" + scene_of(fake_api)).text
    assert reply.startswith("欢迎关注诚城青年助手")
    assert "签到成功：「社区青年志愿服务日」" in reply
    assert members.get(db, ZHANG)["subscribed"] == 1
    newbie = scan(wechat, NEWBIE, "subscribe", "qrscene_" + scene_of(fake_api)).text
    assert newbie.startswith("欢迎关注") and "你还没有报名「社区青年志愿服务日」" in newbie


def test_scans_count_towards_the_attempt_limit(organiser, wechat, rt, db, fake_api, activity):
    organiser.get(f"/admin/activities/{activity}")
    signed_up(wechat, ZHANG)
    at_start(rt, db, activity, -30)
    for n in range(5):
        wechat.text(ZHANG, f"签到 {300000 + n}")
    assert scan(wechat, ZHANG, "SCAN", scene_of(fake_api)).text.startswith("签到码输错次数太多")


def test_an_account_that_cannot_make_qr_codes_shows_the_typed_code(organiser, db, fake_api,
                                                                   activity):
    fake_api.qr_unauthorized = True
    page = organiser.get(f"/admin/activities/{activity}").get_data(as_text=True)
    code = service.get_activity(db, activity)["checkin_code"]
    assert "本公众号不能生成带参数的二维码" in page and "48001" in page
    assert f"签到 {code}" in page and 'class="qr-img"' not in page
    assert organiser.get(f"/admin/activities/{activity}/qr.png").status_code == 404
    organiser.get(f"/admin/activities/{activity}")
    assert len(fake_api.calls_to("/cgi-bin/qrcode/create")) == 1  # not asked again at once


def test_a_cancelled_activity_has_no_qr_code(organiser, rt, db, fake_api, activity):
    service.cancel_activity(db, activity, rt.clock.now(), rt.settings.tz)
    page = organiser.get(f"/admin/activities/{activity}").get_data(as_text=True)
    assert fake_api.qr_codes == [] and 'class="qr-img"' not in page


@pytest.mark.parametrize("key,code", [("checkin:123456", "123456"),
                                      ("qrscene_checkin:１２３abc", "123ABC"),
                                      ("123", None), ("", None), (None, None)])
def test_scene_keys(key, code):
    assert code_from_scene(key) == code


def test_where_qr_images_are_shown():
    from settings import DEFAULT_API_BASE, Settings

    assert Settings().qr_base == "https://mp.weixin.qq.com"
    assert Settings(wechat_api_base="http://127.0.0.1:8900").qr_base == "http://127.0.0.1:8900"
    assert Settings(wechat_api_base=DEFAULT_API_BASE,
                    wechat_qr_base="https://qr.example/").qr_base == "https://qr.example"
    assert Settings.from_env({"WECHAT_QR_BASE": "https://qr.example"}).wechat_qr_base == \
        "https://qr.example"
