"""Sign-up from the chat, through the real webhook: lists, numbers, profile, waitlist,
cancellation with promotion, check-in, volunteer hours, dialogs that expire or are left."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from activities import service
from handlers import words
from handlers.signup import parse_number
from handlers.profile import ProfileFormatError, looks_like_profile, parse_profile
from simulator.client import WeChatClient, text_xml
from storage import deliveries, dialogs, members
from tests.conftest import TOKEN, dispatch_all

ZHANG = "oZhangSan0001"
LI = "oLiSi00000002"
WANG = "oWangWu000003"
ZHAO = "oZhaoLiu00004"


@pytest.fixture
def make_activity(rt, db):
    """An open activity a week ahead (3 hours, 3 volunteer hours) unless told otherwise."""

    def make(title="社区青年志愿服务日", *, days: float = 7, capacity=None, **kw):
        now = rt.clock.now()
        start = kw.pop("start", now + timedelta(days=days))
        return service.create_activity(
            db, title=title, now=now, start=start, end=kw.pop("end", start + timedelta(hours=3)),
            capacity=capacity, location=kw.pop("location", "长寿路街道市民驿站"),
            hours=kw.pop("hours", 3), group=kw.pop("group", "青春志愿服务共同体"), **kw)

    return make


def bind(wechat, openid: str, name: str = "张三", unit: str = "虹口区城管执法局") -> None:
    assert wechat.text(openid, f"绑定 {name} {unit}").text.startswith("已登记")


def live(db, activity_id: int) -> list[dict]:
    return [s for s in service.signup_list(db, activity_id) if s["status"] != "cancelled"]


def promoted_keys(db, activity_id: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT dedupe_key FROM deliveries WHERE dedupe_key LIKE ? "
                                     "ORDER BY id", [f"promoted:{activity_id}:%"])]


def dialog_state(rt, openid: str) -> str | None:
    state = dialogs.get(rt.db(), openid, rt.clock.now())
    return state[0] if state else None


# --- 报名: the list, a number, the profile asked for once -----------------------------------

def test_list_then_number_then_profile_completes_the_signup(wechat, db, rt, make_activity):
    first = make_activity("社区青年志愿服务日", capacity=20)
    make_activity("智慧执法兴趣班", days=10, capacity=None)

    listing = wechat.text(ZHANG, "报名").text
    assert listing.startswith("可以报名的活动：")
    assert "1. 社区青年志愿服务日" in listing and "剩余 20 个名额" in listing
    assert "2. 智慧执法兴趣班" in listing and "不限名额" in listing
    assert "回复数字报名" in listing

    ask = wechat.text(ZHANG, "1").text
    assert "请回复：姓名 单位" in ask and "社区青年志愿服务日" in ask
    assert live(db, first) == []

    done = wechat.text(ZHANG, "张三 虹口区城管执法局 13812345678").text
    assert done.startswith("已登记：张三，虹口区城管执法局，手机 138****5678。")
    assert "报名成功" in done
    assert "时间：11月28日(周六) 10:00–13:00" in done and "地点：长寿路街道市民驿站" in done
    rows = live(db, first)
    assert [(r["openid"], r["status"], r["name"], r["unit"], r["phone"]) for r in rows] == \
        [(ZHANG, "confirmed", "张三", "虹口区城管执法局", "13812345678")]
    assert dialog_state(rt, ZHANG) is None


def test_menu_click_lists_activities(wechat, make_activity):
    make_activity("社区青年志愿服务日")
    assert "1. 社区青年志愿服务日" in wechat.event(ZHANG, "CLICK", "SIGNUP").text


def test_keyword_with_one_match_signs_up_directly(wechat, db, make_activity):
    aid = make_activity("组建进博会青年突击队", capacity=5)
    make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    reply = wechat.text(ZHANG, "报名 进博会").text
    assert reply.startswith("报名成功") and "组建进博会青年突击队" in reply
    assert [r["openid"] for r in live(db, aid)] == [ZHANG]


@pytest.mark.parametrize("typed", ["报名 进博会突击队", "报名：进博会青年突击队", "报名进博会",
                                   "报名 进博汇青年突击队", "我要报名 突击队"])
def test_keyword_forms_and_small_typos(wechat, make_activity, typed):
    make_activity("组建进博会青年突击队")
    make_activity("智慧执法兴趣班")
    bind(wechat, ZHANG)
    assert wechat.text(ZHANG, typed).text.startswith("报名成功")


def test_keyword_with_several_matches_gives_a_numbered_list(wechat, db, make_activity):
    make_activity("青年志愿服务：社区垃圾分类宣传")
    second = make_activity("青年志愿服务：爱心暑托班", days=8)
    make_activity("智慧执法兴趣班")
    bind(wechat, ZHANG)
    listing = wechat.text(ZHANG, "报名 青年志愿服务").text
    assert "相关的活动有 2 个" in listing and "智慧执法兴趣班" not in listing
    assert "2. 青年志愿服务：爱心暑托班" in listing
    assert wechat.text(ZHANG, "2").text.startswith("报名成功")
    assert [r["openid"] for r in live(db, second)] == [ZHANG]


def test_keyword_without_a_match(wechat, make_activity):
    make_activity("社区青年志愿服务日")
    reply = wechat.text(ZHANG, "报名 龙舟赛").text
    assert "没有找到和“龙舟赛”相关的可报名活动" in reply


def test_a_question_that_starts_with_baoming_is_not_taken_for_a_keyword(wechat, make_activity):
    make_activity("社区青年志愿服务日")
    reply = wechat.text(ZHANG, "报名截止了吗").text
    assert "报名成功" not in reply and "没有找到和“" not in reply


def test_no_open_activities(wechat, rt, db):
    service.create_activity(db, title="草稿活动", now=rt.clock.now(), status="draft")
    assert wechat.text(ZHANG, "报名").text == "目前没有可以报名的活动，有新活动会在这里发布。"


# --- the words of the result -------------------------------------------------------------

def test_full_gives_waitlist_place_and_repeat_says_already(wechat, db, make_activity):
    aid = make_activity("社区青年志愿服务日", capacity=1)
    for openid, name in [(ZHANG, "张三"), (LI, "李四"), (WANG, "王五")]:
        bind(wechat, openid, name)
    assert wechat.text(ZHANG, "报名 志愿服务日").text.startswith("报名成功")
    li = wechat.text(LI, "报名 志愿服务日").text
    assert "候补第1位" in li and "递补成功会通知你" in li
    assert "候补第2位" in wechat.text(WANG, "报名 志愿服务日").text

    again = wechat.text(ZHANG, "报名 志愿服务日").text
    assert "已报名" in again and "已确认" in again
    assert "已报名" in wechat.text(LI, "报名 志愿服务日").text
    assert "候补第1位" in wechat.text(LI, "报名 志愿服务日").text
    assert [(r["openid"], r["status"]) for r in live(db, aid)] == \
        [(ZHANG, "confirmed"), (LI, "waitlisted"), (WANG, "waitlisted")]
    listing = wechat.text(ZHAO, "报名").text
    assert "已满（可候补，已有 2 人候补）" in listing


def test_deadline_passed(wechat, rt, db, make_activity):
    now = rt.clock.now()
    aid = make_activity("社区青年志愿服务日", deadline=now + timedelta(days=2))
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    assert "1. 社区青年志愿服务日" in wechat.text(LI, "报名").text
    rt.clock.set(now + timedelta(days=2, minutes=1))
    reply = wechat.text(ZHANG, "报名 志愿服务日").text
    assert reply.startswith("报名已截止") and "11月23日(周一) 10:00" in reply
    assert wechat.text(LI, "1").text.startswith(words.DIALOG_EXPIRED)
    assert wechat.text(LI, "报名").text.startswith("目前没有可以报名的活动")
    assert live(db, aid) == []


def test_deadline_passes_while_the_member_reads_the_list(wechat, rt, db, make_activity):
    now = rt.clock.now()
    make_activity("社区青年志愿服务日", deadline=now + timedelta(minutes=5))
    bind(wechat, ZHANG)
    assert "1. 社区青年志愿服务日" in wechat.text(ZHANG, "报名").text
    rt.clock.set(now + timedelta(minutes=6))
    assert wechat.text(ZHANG, "1").text.startswith("报名已截止")


def test_closed_by_the_organiser(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    service.close_activity(db, aid, rt.clock.now())
    assert wechat.text(ZHANG, "报名 志愿服务日").text == "报名已截止：「社区青年志愿服务日」已停止报名。"


def test_cancelled_activity(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    make_activity("智慧执法兴趣班")
    bind(wechat, ZHANG)
    assert "1. 社区青年志愿服务日" in wechat.text(ZHANG, "报名").text
    service.cancel_activity(db, aid, rt.clock.now(), rt.settings.tz)
    assert wechat.text(ZHANG, "1").text.startswith("活动已取消")
    assert wechat.text(ZHANG, "报名 志愿服务日").text.startswith("活动已取消")
    assert "社区青年志愿服务日" not in wechat.text(ZHANG, "报名").text
    assert live(db, aid) == []


def test_cancelling_an_activity_tells_everyone_signed_up(wechat, rt, db, make_activity, fake_api):
    aid = make_activity("社区青年志愿服务日", capacity=1)
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    wechat.text(ZHANG, "报名 志愿服务日")
    wechat.text(LI, "报名 志愿服务日")
    told = service.cancel_activity(db, aid, rt.clock.now(), rt.settings.tz, reason="台风预警")
    assert told == [ZHANG, LI]
    dispatch_all(rt)
    for openid in (ZHANG, LI):
        [pushed] = fake_api.inbox(openid)
        assert "活动已取消" in pushed["content"] and "台风预警" in pushed["content"]
    assert "活动已取消" in wechat.text(ZHANG, "我的报名").text


# --- 取消报名 and promotion ------------------------------------------------------------------

def test_cancel_promotes_the_first_waitlisted_and_pushes_a_notice(wechat, rt, db, make_activity,
                                                                 fake_api):
    aid = make_activity("社区青年志愿服务日", capacity=1)
    for openid, name in [(ZHANG, "张三"), (LI, "李四"), (WANG, "王五")]:
        bind(wechat, openid, name)
        wechat.text(openid, "报名 志愿服务日")

    assert wechat.text(ZHANG, "取消报名").text == "已取消「社区青年志愿服务日」的报名。"
    assert [(r["openid"], r["status"]) for r in live(db, aid)] == \
        [(LI, "confirmed"), (WANG, "waitlisted")]
    li_signup = live(db, aid)[0]
    assert li_signup["promoted_by"].startswith("cancel:")
    row = deliveries.get(db, f"promoted:{aid}:{LI}:{li_signup['id']}")
    assert row["kind"] == "notice" and row["status"] == "pending"
    assert promoted_keys(db, aid) == [f"promoted:{aid}:{LI}:{li_signup['id']}"]

    dispatch_all(rt)
    [pushed] = fake_api.inbox(LI)
    assert "候补递补成功" in pushed["content"] and "社区青年志愿服务日" in pushed["content"]
    assert fake_api.inbox(WANG) == [] and fake_api.inbox(ZHANG) == []
    assert "候补第1位" in wechat.text(WANG, "我的报名").text
    assert "（已确认）" in wechat.text(LI, "我的报名").text


def test_cancellations_promote_strictly_in_order(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日", capacity=2)
    people = [f"oQueue{n:07d}" for n in range(6)]
    for n, openid in enumerate(people):
        bind(wechat, openid, f"成员{'一二三四五六'[n]}")
        wechat.text(openid, "报名 志愿服务日")
    assert "候补第2位" in wechat.text(people[3], "我的报名").text
    assert "候补第3位" in wechat.text(people[4], "我的报名").text
    # a waitlisted member leaving moves those behind up without promoting anyone
    wechat.text(people[3], "取消报名")
    assert "候补第2位" in wechat.text(people[4], "我的报名").text
    assert promoted_keys(db, aid) == []
    promoted = []
    for leaver in (people[0], people[1], people[2]):
        wechat.text(leaver, "取消报名")
        promoted.append([r["openid"] for r in live(db, aid) if r["status"] == "confirmed"])
    assert promoted == [[people[1], people[2]], [people[2], people[4]], [people[4], people[5]]]
    assert len(promoted_keys(db, aid)) == 3


def test_a_new_waitlisted_member_is_told_the_place_behind_the_line_as_it_is_now(
        wechat, db, make_activity):
    """The reply's place comes from the counts read in the sign-up's own transaction: after
    someone in the line left, the newcomer is behind the people still waiting."""
    aid = make_activity("社区青年志愿服务日", capacity=2)
    people = [f"oLine{n:08d}" for n in range(6)]
    for n, openid in enumerate(people):
        bind(wechat, openid, f"成员{'一二三四五六'[n]}")
    for openid in people[:5]:
        wechat.text(openid, "报名 志愿服务日")
    wechat.text(people[3], "取消报名")  # the line is now people[2], people[4]
    reply = wechat.text(people[5], "报名 志愿服务日").text
    assert "候补第3位" in reply
    assert "候补第3位" in wechat.text(people[5], "我的报名").text
    assert [r["openid"] for r in live(db, aid) if r["status"] == "waitlisted"] == \
        [people[2], people[4], people[5]]


def test_rejoining_after_cancelling_goes_to_the_back(wechat, db, make_activity):
    aid = make_activity("社区青年志愿服务日", capacity=1)
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    wechat.text(ZHANG, "报名 志愿服务日")
    wechat.text(LI, "报名 志愿服务日")
    wechat.text(ZHANG, "取消报名")
    assert "候补第1位" in wechat.text(ZHANG, "报名 志愿服务日").text
    assert [(r["openid"], r["status"]) for r in live(db, aid)] == \
        [(LI, "confirmed"), (ZHANG, "waitlisted")]


def test_cancel_with_several_signups_asks_which(wechat, db, make_activity):
    a = make_activity("社区青年志愿服务日")
    b = make_activity("智慧执法兴趣班", days=9)
    c = make_activity("长三角执法协作论坛", days=11)
    bind(wechat, ZHANG)
    for kw in ("志愿服务日", "兴趣班", "协作论坛"):
        wechat.text(ZHANG, f"报名 {kw}")
    listing = wechat.text(ZHANG, "取消报名").text
    assert "回复数字取消" in listing and "2. 智慧执法兴趣班（已确认）" in listing
    assert wechat.text(ZHANG, "2").text == "已取消「智慧执法兴趣班」的报名。"
    assert wechat.text(ZHANG, "取消报名 论坛").text == "已取消「长三角执法协作论坛」的报名。"
    assert wechat.text(ZHANG, "取消报名 1").text == "已取消「社区青年志愿服务日」的报名。"
    assert [len(live(db, x)) for x in (a, b, c)] == [0, 0, 0]
    assert "没有未结束的报名" in wechat.text(ZHANG, "取消报名").text


def test_cancel_after_the_start_is_refused(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日", days=1)
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名 志愿服务日")
    rt.clock.set(rt.clock.now() + timedelta(days=1, minutes=5))
    assert "已经开始，不能取消报名" in wechat.text(ZHANG, "取消报名").text
    assert len(live(db, aid)) == 1


# --- dialogs: bad numbers, nonsense, other questions, 取消, expiry ------------------------------

@pytest.mark.parametrize("typed,expected", [("9", "没有第9项"), ("0", "没有第0项"),
                                            ("第3个", "没有第3项")])
def test_bad_numbers_keep_the_dialog(wechat, rt, db, make_activity, typed, expected):
    aid = make_activity("社区青年志愿服务日")
    make_activity("智慧执法兴趣班", days=9)
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    reply = wechat.text(ZHANG, typed).text
    assert reply.startswith(expected) and "1–2" in reply
    assert dialog_state(rt, ZHANG) == "signup.choose"
    assert wechat.text(ZHANG, "１").text.startswith("报名成功")
    assert len(live(db, aid)) == 1


def test_nonsense_mid_dialog_is_not_taken_as_a_choice(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    reply = wechat.text(ZHANG, "哈哈哈哈好的呀").text
    assert reply and "报名成功" not in reply and "没有第" not in reply
    assert live(db, aid) == []


def test_an_unrelated_question_mid_dialog_is_answered_and_the_dialog_survives(wechat, db,
                                                                            make_activity):
    aid = make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    assert "诚城青年助手" in wechat.text(ZHANG, "帮助").text
    assert wechat.text(ZHANG, "1").text.startswith("报名成功")
    assert len(live(db, aid)) == 1


def test_quxiao_leaves_the_dialog(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    assert wechat.text(ZHANG, "取消").text == words.DIALOG_CANCELLED
    assert dialog_state(rt, ZHANG) is None
    assert "报名成功" not in (wechat.text(ZHANG, "1").text or "")
    assert live(db, aid) == []
    assert "当前没有进行中的操作" in wechat.text(ZHANG, "取消").text


def test_an_expired_dialog_says_so_once(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    rt.clock.set(rt.clock.now() + timedelta(minutes=rt.settings.dialog_timeout_minutes + 1))
    reply = wechat.text(ZHANG, "1").text
    assert reply == words.DIALOG_EXPIRED + "请重新回复“报名”选择活动。"
    assert live(db, aid) == []
    assert "报名成功" not in (wechat.text(ZHANG, "1").text or "")
    assert wechat.text(ZHANG, "报名").text.startswith("可以报名的活动")
    assert wechat.text(ZHANG, "1").text.startswith("报名成功")


def test_just_before_expiry_the_dialog_still_works(wechat, rt, db, make_activity):
    make_activity("社区青年志愿服务日")
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "报名")
    rt.clock.set(rt.clock.now() + timedelta(minutes=rt.settings.dialog_timeout_minutes - 1))
    assert wechat.text(ZHANG, "1").text.startswith("报名成功")


def test_profile_step_lets_questions_through_and_checks_the_answer(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    assert "请回复：姓名 单位" in wechat.text(ZHANG, "报名 志愿服务日").text
    assert "诚城青年助手" in wechat.text(ZHANG, "帮助").text
    assert "已登记" not in (wechat.text(ZHANG, "体检几月？").text or "")
    assert "请回复：姓名 单位" in wechat.text(ZHANG, "报名 志愿服务日").text
    assert dialog_state(rt, ZHANG) == "signup.profile"
    wrong = wechat.text(ZHANG, "张三 虹口区城管执法局 12345").text
    assert wrong.startswith("手机号格式不对")
    assert "已登记" not in (wechat.text(ZHANG, "张三").text or "")
    assert wechat.text(ZHANG, "张三 1").text.startswith("单位名称应为")
    done = wechat.text(ZHANG, "姓名：张三，单位：虹口区城管执法局").text
    assert done.startswith("已登记：张三，虹口区城管执法局。") and "报名成功" in done
    assert len(live(db, aid)) == 1


def test_profile_dialog_expires_too(wechat, rt, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    wechat.text(ZHANG, "报名 志愿服务日")
    rt.clock.set(rt.clock.now() + timedelta(minutes=rt.settings.dialog_timeout_minutes + 1))
    assert wechat.text(ZHANG, "张三 虹口区城管执法局").text.startswith(words.DIALOG_EXPIRED)
    assert live(db, aid) == [] and members.get(db, ZHANG)["name"] is None


# --- profile --------------------------------------------------------------------------------

def test_bind_and_my_info(wechat, db):
    assert "还没有登记信息" in wechat.text(ZHANG, "我的信息").text
    reply = wechat.text(ZHANG, "绑定 张三 虹口区城管执法局 13812345678").text
    assert reply.startswith("已登记：张三，虹口区城管执法局，手机 138****5678")
    info = wechat.text(ZHANG, "我的信息").text
    assert "姓名：张三" in info and "单位：虹口区城管执法局" in info and "138****5678" in info
    assert "13812345678" not in info
    wechat.text(ZHANG, "绑定 张三 静安区城管执法局")
    member = members.get(db, ZHANG)
    assert (member["unit"], member["phone"]) == ("静安区城管执法局", "13812345678")


@pytest.mark.parametrize("typed,expected", [
    ("绑定", "格式：绑定 姓名 单位"),
    ("绑定 张三", "需要姓名和单位两项"),
    ("绑定 张三 虹口区城管执法局 123", "手机号格式不对"),
    ("绑定 X 虹口区城管执法局", "姓名应为 2–6 个汉字"),
])
def test_bind_errors_are_clear(wechat, typed, expected):
    assert wechat.text(ZHANG, typed).text.startswith(expected)


@pytest.mark.parametrize("text,parsed", [
    ("张三 虹口区城管执法局", ("张三", "虹口区城管执法局", None)),
    ("张三，虹口区城管执法局，13812345678", ("张三", "虹口区城管执法局", "13812345678")),
    ("姓名:欧阳娜娜 单位:浦东新区城管执法局 执法一中队",
     ("欧阳娜娜", "浦东新区城管执法局 执法一中队", None)),
    ("绑定 李四 临港城管执法局 021-12345678", ("李四", "临港城管执法局", "02112345678")),
])
def test_parse_profile(text, parsed):
    assert parse_profile(text) == parsed


@pytest.mark.parametrize("text", ["体检几月", "疗休养什么时候？", "青春志愿服务谁牵头",
                                  "今年有哪些项目可以参加", "", "帮助", "张三", "订阅提醒 体检",
                                  "报名 进博会", "取消报名 2", "签到 123456", "通知 明天开会"])
def test_questions_do_not_look_like_a_profile(text):
    assert not looks_like_profile(text)


def test_parse_profile_rejects_a_question():
    with pytest.raises(ProfileFormatError):
        parse_profile("疗休养 几月份")


@pytest.mark.parametrize("text,n", [("1", 1), ("２", 2), ("第3个", 3), ("三", 3), (" 12 ", 12),
                                    ("1个人", None), ("abc", None), ("1.5", None)])
def test_parse_number(text, n):
    assert parse_number(text) == n


# --- 签到 and volunteer hours -------------------------------------------------------------------

def test_check_in_credits_hours_and_totals_add_up(wechat, rt, db, make_activity):
    now = rt.clock.now()
    a = make_activity("社区青年志愿服务日", days=1, hours=3)
    b = make_activity("爱心暑托班", days=2, hours=2.5, capacity=1)
    code_a = service.get_activity(db, a)["checkin_code"]
    code_b = service.get_activity(db, b)["checkin_code"]
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    bind(wechat, ZHAO, "赵六")
    wechat.text(ZHANG, "报名 志愿服务日")
    wechat.text(ZHANG, "报名 暑托班")
    wechat.text(LI, "报名 暑托班")
    wechat.text(ZHAO, "报名 志愿服务日")

    assert wechat.text(ZHANG, "签到").text.startswith("请回复“签到 签到码”")
    assert wechat.text(ZHANG, "签到 000000").text.startswith("签到码不正确")
    too_early = wechat.text(ZHANG, f"签到 {code_a}").text
    assert too_early.startswith("签到还没开始")

    rt.clock.set(now + timedelta(days=1, minutes=-20))
    assert wechat.text(LI, f"签到 {code_a}").text == service.WRONG_CODE  # the code's owner stays hidden
    ok = wechat.text(ZHANG, f"签到 {code_a}").text
    assert ok.startswith("签到成功：「社区青年志愿服务日」，记志愿时长 3 小时")
    assert wechat.text(ZHANG, f"签到{code_a}").text.startswith("你已经签到过了")

    rt.clock.set(now + timedelta(days=2, hours=1))
    assert "候补名单上" in wechat.text(LI, f"签到 {code_b}").text
    assert wechat.text(ZHANG, f"签到：{code_b}").text.startswith("签到成功")
    total = wechat.text(ZHANG, "我的志愿时长").text
    assert total.startswith("你的累计志愿时长：5.5 小时（2 次活动）")
    assert "爱心暑托班（青春志愿服务共同体） 2.5 小时" in total
    assert service.hours_total(db, ZHANG) == (5.5, 2)
    assert wechat.text(LI, "我的志愿时长").text.startswith("你还没有志愿时长记录")

    rt.clock.set(now + timedelta(days=3))
    assert wechat.text(ZHANG, f"签到 {code_b}").text.startswith("你已经签到过了")
    assert "签到已经结束" in wechat.text(ZHAO, f"签到 {code_a}").text


def test_my_signups_lists_status(wechat, rt, db, make_activity):
    make_activity("社区青年志愿服务日", capacity=1)
    make_activity("智慧执法兴趣班", days=9)
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    assert "没有未结束的报名" in wechat.text(LI, "我的报名").text
    wechat.text(ZHANG, "报名 志愿服务日")
    wechat.text(LI, "报名 志愿服务日")
    wechat.text(LI, "报名 兴趣班")
    mine = wechat.text(LI, "我的报名").text
    assert "1. 社区青年志愿服务日（候补第1位）" in mine
    assert "2. 智慧执法兴趣班（已确认）" in mine and "取消报名 编号" in mine


# --- WeChat's retries ------------------------------------------------------------------------

def test_a_retried_message_signs_up_once_and_gets_the_same_reply(wechat, db, make_activity):
    aid = make_activity("社区青年志愿服务日", capacity=1)
    bind(wechat, ZHANG)
    bind(wechat, LI, "李四")
    wechat.text(LI, "报名 志愿服务日")
    first = wechat.text(ZHANG, "报名 志愿服务日", msg_id=880001)
    again = wechat.text(ZHANG, "报名 志愿服务日", msg_id=880001)
    assert "候补第1位" in first.text and again.text == first.text
    assert [r["openid"] for r in live(db, aid)] == [LI, ZHANG]


def test_concurrent_retries_of_one_message_sign_up_once(app, db, make_activity):
    aid = make_activity("社区青年志愿服务日", capacity=10)
    client = WeChatClient(TOKEN, app=app)
    assert client.text(ZHANG, "绑定 张三 虹口区城管执法局").text.startswith("已登记")
    xml = text_xml(ZHANG, "报名 志愿服务日", msg_id=880002)
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.post_xml(xml)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.text for r in results}) == 1 and results[0].text.startswith("报名成功")
    assert len(live(db, aid)) == 1


def test_safe_mode_signup(wechat_aes, db, make_activity):
    aid = make_activity("社区青年志愿服务日")
    assert wechat_aes.text(ZHANG, "绑定 张三 虹口区城管执法局").text.startswith("已登记")
    assert wechat_aes.text(ZHANG, "报名 志愿服务日").text.startswith("报名成功")
    assert len(live(db, aid)) == 1
