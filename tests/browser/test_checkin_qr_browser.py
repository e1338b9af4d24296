"""The check-in QR page on a phone (390×844), as an organiser holds it up at the venue: the
WeChat QR image (from showqrcode on the fake WeChat API) is loaded, fits the screen and is
big enough to scan; scanning it checks a member in."""
from __future__ import annotations

import time
from datetime import timedelta

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or, with REQUIRE_BROWSER=1, fails) the tests
    expect = None

from activities import service
from simulator.client import WeChatClient
from tests.browser.conftest import PHONE, shoot
from tests.browser.test_console_browser import login
from tests.conftest import TOKEN

MEMBER = "oScanMember01"


def test_the_qr_page_on_a_phone_checks_a_member_in(page, rt, app, fake_api):
    db, now = rt.db(), rt.clock.now()
    aid = service.create_activity(db, title="周末青春志愿服务", now=now,
                                  start=now + timedelta(minutes=30),
                                  end=now + timedelta(hours=3), location="虹口区城管执法局三楼",
                                  hours=2.5)
    code = service.get_activity(db, aid)["checkin_code"]
    wechat = WeChatClient(TOKEN, app=app)
    wechat.text(MEMBER, "绑定 张三 虹口区城管执法局")
    assert wechat.text(MEMBER, "报名 周末青春志愿").text.startswith("报名成功")

    login(page, rt, "王干事", "organiser")
    page.set_viewport_size(PHONE)
    page.goto(f"/admin/activities/{aid}/qr")
    image = page.locator("img.qr-img")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('img.qr-img').naturalWidth") > 0  # loaded
    box = image.bounding_box()
    assert box["width"] >= 240 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    expect(page.locator(".qr-sheet .code")).to_have_text(code)
    expect(page.locator(".qr-sheet")).to_contain_text(f"签到 {code}")
    shoot(page, "12-checkin-qr")

    [qr] = fake_api.qr_codes  # what a member's WeChat reads from the image
    reply = wechat.event(MEMBER, "SCAN", qr["scene"], create_time=int(time.time()))
    assert reply.text.startswith("签到成功：「周末青春志愿服务」，记志愿时长 2.5 小时")


def test_the_page_says_so_when_the_account_cannot_make_qr_codes(page, rt, fake_api):
    fake_api.qr_unauthorized = True
    now = rt.clock.now()
    aid = service.create_activity(rt.db(), title="周末青春志愿服务", now=now,
                                  start=now + timedelta(days=1))
    code = service.get_activity(rt.db(), aid)["checkin_code"]
    login(page, rt, "王干事", "organiser")
    page.set_viewport_size(PHONE)
    page.goto(f"/admin/activities/{aid}/qr")
    expect(page.locator(".qr-sheet")).to_contain_text("本公众号不能生成带参数的二维码")
    expect(page.locator(".qr-sheet .code")).to_have_text(code)
    assert page.locator("img.qr-img").count() == 0
    shoot(page, "13-checkin-qr-unverified")
