"""需求征集 and 联盟项目 on a phone (390×844): an organiser adopts a member's need for 自由揭榜,
a unit claims it, and the projects page flags what has not started."""
from __future__ import annotations

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or, with REQUIRE_BROWSER=1, fails) the tests
    expect = None

from alliance import needs as service
from storage import deliveries
from tests.browser.conftest import PHONE, shoot
from tests.browser.test_console_browser import login
from tests.test_needs import HOSTILE, bind

MEMBER = "oBrowserNeed1"


def test_a_need_from_the_chat_to_a_claim_on_a_phone(page, rt, wechat):
    bind(wechat, MEMBER, "静安区城管执法局", "张三")
    assert "已收到你的需求" in wechat.text(MEMBER, "提需求 希望组织一次社区安全科普citywalk").text
    wechat.text(MEMBER, "提需求 " + HOSTILE)
    page.set_viewport_size(PHONE)
    login(page, rt, "王干事", "organiser")
    page.click("nav.tabs >> text=需求")
    expect(page.locator("h1")).to_have_text("需求征集")
    group = page.locator("#g-shequ")
    expect(group).to_contain_text("社区安全科普citywalk")
    expect(group).to_contain_text('<script>alert("x")</script>')  # shown as text, not run
    shoot(page, "20-needs")

    group.locator("text=社区安全科普citywalk").click()
    expect(page.locator("h1")).to_contain_text("新提交")
    expect(page.locator("main")).to_contain_text("张三")  # who raised it
    page.fill("#project", "社区安全科普citywalk")
    page.check("input[name=mode][value=open]")
    shoot(page, "21-need-adopt")
    page.click("#adopt button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("已采纳并立项（自由揭榜）")
    page.select_option("#claim-unit", "普陀区城管执法部门团组织")
    page.click("#claim button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("普陀区城管执法部门团组织已揭榜")
    expect(page.locator("h1")).to_contain_text("已揭榜")
    shoot(page, "22-need-claimed")
    need = service.member_needs(rt.db(), MEMBER)[-1]
    assert need["status"] == "claimed" and need["claimed_unit"] == "普陀区城管执法部门团组织"
    assert deliveries.get(rt.db(), f"need:{need['id']}:claimed") is not None

    page.click("nav.tabs >> text=项目")
    expect(page.locator("h1")).to_contain_text("联盟项目")
    expect(page.locator("#g-shequ")).to_contain_text("社区安全科普citywalk")
    shoot(page, "23-projects")
