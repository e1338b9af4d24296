"""人工 in a real browser: a member asks for a person in the simulator, the conversation appears
in the inbox, the organiser replies, the reply arrives as a pushed message, the organiser
closes it. Screenshots of the inbox at a phone's and a desktop's size."""
from __future__ import annotations

from datetime import timedelta

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or, with REQUIRE_BROWSER=1, fails) the tests
    expect = None

from storage import audit, members
from storage import handoff as store
from tests.browser.conftest import PHONE, shoot
from tests.browser.test_console_browser import login, say, tab
from tests.conftest import dispatch_all

MEMBER = "sim-wang-013"


def test_a_member_reaches_a_person_and_the_organiser_answers(page, rt, wechat):
    wechat.text("oOtherMember0001", "绑定 李四 徐汇区城管执法局 13922223333")
    wechat.text("oOtherMember0001", "人工")  # someone already waiting, so the list is a list
    rt.clock.set(rt.clock.now() + timedelta(minutes=25))
    login(page, rt, name="王干事", role="organiser")

    tab(page, "模拟器")
    chat = page.frame_locator("iframe.sim-frame")
    chat.locator("#openid").fill(MEMBER)
    say(chat, "绑定 王五 普陀区城管执法局 13733334444", "王五")
    say(chat, "人工", "已通知工作人员")
    say(chat, "宿舍楼的热水器坏了找谁修", "已转给工作人员")
    rt.clock.set(rt.clock.now() + timedelta(minutes=4))

    tab(page, "人工")
    expect(page.locator("#waiting")).to_have_text("2")
    expect(page.locator("#oldest")).to_have_text("29 分钟")
    expect(page.locator(".inbox-list li").first).to_contain_text("李四")  # waited longest
    item = page.locator(".inbox-list li", has_text="王五")
    expect(item).to_contain_text("宿舍楼的热水器坏了找谁修")
    shoot(page, "40-inbox")

    item.locator("a").click()
    expect(page.locator("h1")).to_have_text("王五")
    expect(page.locator("main")).to_contain_text("137****4444")
    assert "13733334444" not in page.content()
    expect(page.locator("#hours-left")).to_have_text("47 小时")  # wrote 4 minutes ago
    expect(page.locator("#messages-left")).to_have_text("5 条")
    shoot(page, "41-inbox-conversation")

    page.fill("#text", "您好，已通知后勤明天上午上门维修热水器。")
    page.click("button:has-text('发送回复')")
    expect(page.locator(".flash.ok")).to_contain_text("已发送")
    dispatch_all(rt)
    page.reload()
    expect(page.locator(".say.staff").last).to_contain_text("已送达")
    expect(page.locator("#messages-left")).to_have_text("4 条")
    page.set_viewport_size(PHONE)
    shoot(page, "42-inbox-replied")

    tab(page, "模拟器")
    chat = page.frame_locator("iframe.sim-frame")
    chat.locator("#openid").fill(MEMBER)
    expect(chat.locator(".row.push .bubble").last).to_contain_text("明天上午上门维修热水器")

    tab(page, "人工")
    page.locator(".inbox-list li", has_text="王五").locator("a").click()
    page.click("button:has-text('结束对话')")
    expect(page.locator(".flash.ok")).to_contain_text("已结束对话")
    expect(page.locator(".inbox-list")).not_to_contain_text("王五")
    assert store.open_for(rt.db(), MEMBER) is None
    assert [a["action"] for a in audit.recent(rt.db())][:2] == ["结束人工对话", "人工回复"]

    tab(page, "概览")
    expect(page.locator("#handoff")).to_contain_text("1 位成员在等回复")
    shoot(page, "43-dashboard-handoff")


def test_signup_names_stay_on_one_line_on_a_desktop(page, rt):
    from activities import service

    db, now = rt.db(), rt.clock.now()
    activity = service.create_activity(db, title="冬季送温暖志愿服务", now=now,
                                       start=now + timedelta(days=5), capacity=3, hours=3,
                                       location="虹口区城管执法局三楼", created_by="李书记")
    for n, (name, unit) in enumerate([("张三", "虹口区城管执法局"), ("欧阳晓明", "浦东新区城管执法局"),
                                      ("李四", "徐汇区城管执法局"), ("赵六", "静安区城管执法局")]):
        openid = f"oSignup{n:05d}"
        members.touch(db, openid, now)
        members.set_profile(db, openid, name, unit, f"1381111{n:04d}", now)
        service.sign_up(db, activity, openid, now)
    login(page, rt)
    page.goto(f"/admin/activities/{activity}")
    lines = page.eval_on_selector_all(
        "table.signups td.title-cell",
        "cells => cells.map(c => { const r = document.createRange(); r.selectNodeContents(c);"
        " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; })")
    assert lines == [1, 1, 1, 1], lines
    shoot(page, "44-activity-signups")
