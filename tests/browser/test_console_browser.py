"""An organiser's afternoon in a real browser: log in, publish an activity, sign up as a member
from the simulator, see the list, export it, send a notice, answer an unanswered question."""
from __future__ import annotations

import csv
import io

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or, with REQUIRE_BROWSER=1, fails) the tests
    expect = None

from console.auth import hash_password
from storage import admins, audit
from tests.browser.conftest import shoot
from tests.conftest import dispatch_all

PASSWORD = "browser-pass-1"
MEMBER = "sim-zhang-001"


def login(page, rt, name="李书记", role="admin"):
    admins.create(rt.db(), name, hash_password(PASSWORD), role, rt.clock.now())
    page.goto("/admin/")
    expect(page.locator("h1")).to_have_text("管理后台")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav.tabs")).to_be_visible()


def tab(page, name: str) -> None:
    """Open a console page from the navigation and wait until its scripts have run."""
    page.click(f"nav.tabs >> text={name}")
    page.wait_for_load_state("load")


def say(frame, text: str, expect_text: str):
    """Type into the simulator's chat box and wait for the bot's reply containing expect_text."""
    before = frame.locator(".row.bot").count()
    frame.locator("#text").fill(text)
    frame.locator("#text").press("Enter")
    expect(frame.locator(".row.bot")).to_have_count(before + 1)
    reply = frame.locator(".row.bot .bubble").last
    expect(reply).to_contain_text(expect_text)
    return reply.inner_text()


def test_login_page_and_a_wrong_password(page, rt):
    admins.create(rt.db(), "王干事", hash_password(PASSWORD), "organiser", rt.clock.now())
    page.goto("/admin/activities/")
    expect(page.locator("h1")).to_have_text("管理后台")
    shoot(page, "01-login")
    page.fill("#name", "王干事")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".flash.bad")).to_contain_text("用户名或密码错误")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("活动报名")  # back to the page first asked for
    page.goto("/admin/audit/")
    expect(page.locator("main")).to_contain_text("403")  # organisers do not read the audit log


def test_an_organisers_afternoon(page, rt):
    login(page, rt)
    shoot(page, "02-dashboard-empty")

    # publish an activity
    tab(page, "活动")
    page.click("text=新建活动")
    page.fill("#title", "周末青春志愿服务")
    page.fill("#group", "青春志愿服务共同体")
    page.fill("#location", "虹口区城管执法局三楼")
    page.fill("#start", "2026-11-28T09:00")
    page.fill("#end", "2026-11-28T11:30")
    page.fill("#capacity", "2")
    page.fill("#hours", "2.5")
    page.fill("#description", "清理社区共享单车乱停放，统一着装。")
    shoot(page, "03-activity-new")
    page.click("text=发布活动")
    expect(page.locator(".flash.ok")).to_contain_text("活动已发布")
    expect(page.locator(".qr img.qr-img")).to_be_visible()
    activity_url = page.url

    # sign up as a member from the simulator (through the real /wechat webhook)
    tab(page, "模拟器")
    chat = page.frame_locator("iframe.sim-frame")
    chat.locator("#openid").fill(MEMBER)
    say(chat, "报名 周末青春志愿", "登记信息")
    say(chat, "张三 虹口区城管执法局 13812345678", "报名成功")
    shoot(page, "04-simulator")

    # the sign-up appears in the list, phone masked
    page.goto(activity_url)
    row = page.locator("table.signups tbody tr").first
    expect(row).to_contain_text("张三")
    expect(row).to_contain_text("138****5678")
    expect(row).to_contain_text("已确认")
    assert "13812345678" not in page.content()
    shoot(page, "05-activity-signups")

    # export: masked by default; a reveal is recorded
    with page.expect_download() as download:
        page.click("text=下载名单")
    text = open(download.value.path(), encoding="utf-8-sig").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][1] == "姓名" and rows[1][1] == "张三" and rows[1][3] == "138****5678"
    page.check("input[name=reveal]")
    page.check("input[value=xlsx]")
    with page.expect_download() as download:
        page.click("text=下载名单")
    assert download.value.suggested_filename.endswith(".xlsx")
    actions = [r["action"] for r in audit.recent(rt.db())]
    assert "导出名单（显示手机号）" in actions and "导出名单" in actions

    # a notice to the activity's sign-ups: preview, send, follow delivery, see it arrive
    tab(page, "群发")
    page.fill("#text", "周六上午9点在三楼集合，请穿志愿者马甲。")
    page.select_option("select[name=activity]", label="周末青春志愿服务（1 人）")
    expect(page.locator("input[name=audience][value=activity]")).to_be_checked()
    expect(page.locator("#bubble")).to_contain_text("【通知】周六上午9点")
    page.click("text=预览")
    expect(page.locator("#reach")).to_have_text("1")
    shoot(page, "09-broadcast-preview")
    page.click("text=确认发送给 1 人")
    expect(page.locator(".flash.ok")).to_contain_text("共 1 人")
    dispatch_all(rt)
    page.reload()
    expect(page.locator("#sent")).to_have_text("1")
    shoot(page, "09-broadcast-delivery")
    assert "群发通知" in [r["action"] for r in audit.recent(rt.db())]

    # an unanswered question, answered from the console, then answered by the bot
    tab(page, "模拟器")
    chat = page.frame_locator("iframe.sim-frame")
    chat.locator("#openid").fill(MEMBER)
    expect(chat.locator(".row.push .bubble").last).to_contain_text("请穿志愿者马甲")
    say(chat, "机关食堂几点开饭", "没有找到")
    tab(page, "知识库")
    unanswered = page.locator("#unanswered li", has_text="机关食堂几点开饭")
    expect(unanswered).to_be_visible()
    shoot(page, "06-knowledge")
    unanswered.locator("text=处理").click()
    page.fill("#answer", "机关食堂午餐供应时间为11:30至13:00，晚餐为17:30至18:30。")
    page.select_option("#source", "_other")
    page.fill("#source_other", "局机关后勤通知")
    page.fill("#keywords", "食堂、开饭")
    shoot(page, "07-unanswered")
    page.click("text=新建条目")
    expect(page.locator(".flash.ok")).to_contain_text("已新建条目")
    tab(page, "模拟器")
    chat = page.frame_locator("iframe.sim-frame")
    chat.locator("#openid").fill(MEMBER)
    say(chat, "机关食堂几点开饭", "11:30至13:00")

    # the test box shows the reply, the entry and its score
    tab(page, "知识库")
    page.fill("input[name=question]", "食堂几点开饭")
    page.click("text=看机器人怎么答")
    expect(page.locator("#test-reply")).to_contain_text("11:30")
    shoot(page, "08-knowledge-test")

    tab(page, "日志")
    expect(page.locator("main")).to_contain_text("新建条目")
    shoot(page, "10-audit")
    tab(page, "概览")
    expect(page.locator(".stats").first).to_contain_text("成员总数")
    shoot(page, "11-dashboard")
    page.click("text=退出")
    expect(page.locator(".login")).to_be_visible()


def seed(rt, wechat, fake_api) -> dict:
    """A month of use: members, questions over 30 days, activities in every state, a broadcast
    with a failure, so every page is shown with realistic content."""
    from datetime import timedelta

    from activities import service
    from scheduler import broadcast
    from storage import messages

    db, now, tz = rt.db(), rt.clock.now(), rt.settings.tz
    people = [("张三", "虹口区城管执法局", "13811112222"), ("李四", "徐汇区城管执法局", "13922223333"),
              ("王五", "普陀区城管执法局", "13733334444"), ("赵六", "静安区城管执法局", "13644445555"),
              ("孙七", "浦东新区城管执法局", "13555556666"), ("周八", "黄浦区城管执法局", "13466667777")]
    openids = []
    for n, (name, unit, phone) in enumerate(people):
        openid = f"oSeedMember{n:04d}"
        wechat.event(openid, "subscribe")
        wechat.text(openid, f"绑定 {name} {unit} {phone}")
        openids.append(openid)
    for question in ("机关食堂几点开饭", "单位停车位怎么申请", "工会会费每月交多少"):
        wechat.text(openids[0], question)
    topics = ["union-xm-tijian", "alliance-overview", "union-xm-tijian", "union-xm-jingsai"]
    for day in range(30):
        for k in range((day * 7) % 11 + 2):
            at = now - timedelta(days=day, hours=k % 5)
            key = f"seed:{day}:{k}"
            messages.claim(db, dedupe_key=key, msg_id=None, openid=openids[k % len(openids)],
                           type="text", event=None, content="体检几月", now=at)
            messages.finish(db, key, reply="…", handler="knowledge.ask", topic=topics[k % 4],
                            answered=k % 6 != 0, status="done", latency_ms=40, now=at)
    start = now + timedelta(days=5)
    full = service.create_activity(db, title="冬季送温暖志愿服务", now=now, start=start,
                                   end=start + timedelta(hours=3), capacity=3, hours=3,
                                   location="虹口区城管执法局三楼", group="青春志愿服务共同体",
                                   created_by="李书记")
    for openid in openids[:5]:
        service.sign_up(db, full, openid, now)
    service.create_activity(db, title="青年读书分享会", now=now, start=start + timedelta(days=3),
                            location="局机关图书室", group="青春法治专研共同体", created_by="李书记")
    service.create_activity(db, title="执法案例研讨活动", now=now, status="draft",
                            group="青春法治专研共同体", created_by="李书记")
    cancelled = service.create_activity(db, title="秋季健步走", now=now, start=start,
                                        capacity=50, created_by="李书记")
    service.cancel_activity(db, cancelled, now, tz, "天气原因")
    fake_api.inject("/cgi-bin/message/custom/send", errcode=43004, openid=openids[5])
    queued = broadcast.queue(rt, "本周五下午两点在局机关三楼会议室召开青年工作例会，请各共同体召集人参加。")
    dispatch_all(rt)
    return {"full": full, "batch": queued.batch}


def test_every_page_looks_finished_on_a_phone_and_a_desktop(page, rt, wechat, fake_api):
    from storage import knowledge as kb_store

    data = seed(rt, wechat, fake_api)
    login(page, rt)
    pages = [("20-dashboard", "/admin/", "每日消息数"),
             ("21-activities", "/admin/activities/", "冬季送温暖志愿服务"),
             ("22-activity-waitlist", f"/admin/activities/{data['full']}", "候补第 1 位"),
             ("23-activity-edit", f"/admin/activities/{data['full']}/edit", "修改活动"),
             ("24-knowledge", "/admin/knowledge/", "单位停车位怎么申请"),
             ("25-entry", "/admin/knowledge/entries/union-xm-tijian", "成员看到的回答"),
             ("26-entry-new", "/admin/knowledge/entries/new", "新建条目"),
             ("27-unanswered", "/admin/knowledge/unanswered/"
              f"{kb_store.unanswered(rt.db())[0]['id']}", "设为别名"),
             ("28-broadcasts", "/admin/broadcasts/", "发送记录"),
             ("29-broadcast-failures", f"/admin/broadcasts/{data['batch']}", "没发出去的原因"),
             ("30-simulator", "/admin/simulator/", "怎么用"),
             ("31-audit", "/admin/audit/", "登录"),
             ("32-not-found", "/admin/activities/9999", "404")]
    for name, path, words in pages:
        page.goto(path)
        expect(page.locator("main")).to_contain_text(words)
        shoot(page, name)
    page.click("text=退出")

    admins.create(rt.db(), "王干事", hash_password(PASSWORD), "organiser", rt.clock.now())
    page.fill("#name", "王干事")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/admin/audit/")
    expect(page.locator("main")).to_contain_text("不能做这件事")
    shoot(page, "33-forbidden")
    page.goto("/admin/knowledge/entries/union-xm-tijian")
    expect(page.locator("main")).to_contain_text("只有管理员可以修改知识库")
    shoot(page, "34-entry-read-only")
