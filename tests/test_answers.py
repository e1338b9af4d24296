"""Answers members can trust (issue 9), class by class, through the webhook as WeChat posts them."""
from __future__ import annotations

from datetime import datetime

import pytest

from knowledge import engine_for
from knowledge.engine import Engine
from storage import knowledge as kb_store

MEMBER = "oAnswers0001"


def ask(wechat, text, openid=MEMBER):
    return wechat.text(openid, text).text


def unanswered(db) -> int:
    return db.execute("SELECT count(*) FROM unanswered").fetchone()[0]


# --- 1. typos, homophones, pinyin initials, English words ------------------------------------

@pytest.mark.parametrize("question,must", [
    ("杨埔在哪个共同体", ["青春志愿服务"]),  # 埔 sounds like 浦
    ("普沱是哪个组的", ["青春社区治理"]),  # 沱 / 陀
    ("疗修养几月", ["5月"]),  # 修 / 休
    ("gh体检几月", ["9月"]),  # pinyin initials
    ("zyz共同体谁牵头", ["奉贤"]),
    ("health check一般安排在哪个月", ["9月"]),  # English words
    ("dj要点是哪天发的", ["沪城管执党组"]),
])
def test_typos_initials_and_english_reach_the_right_entry(wechat, question, must):
    reply = ask(wechat, question)
    assert not reply.startswith("没有找到"), reply
    assert all(m in reply for m in must), reply


def test_a_same_sounding_typo_never_rewrites_a_real_word():
    engine = Engine()
    assert engine.normalize("长三角执法协作论坛在哪个城市开") == "长三角执法协作论坛在哪个城市开"
    assert engine.normalize("集体生日会发什么礼物") == "集体生日会发什么礼物"
    assert engine.normalize("建筑拉圾") == "建筑垃圾"


# --- 2. lead-ins and run-ons; 3. per-unit answers and 我们单位 ----------------------------------

def test_a_greeting_and_self_introduction_do_not_bury_the_question(wechat):
    reply = ask(wechat, "哈喽小助手👋 我是刚考进来的 分在金山区局……金山在里面是哪个组啊 牵头的是哪个区")
    assert "青春法治专研" in reply and "虹口" in reply


@pytest.mark.parametrize("question,group", [
    ("徐汇是法治专研那组的吗", "青春法治专研"),
    ("杨浦是不是社区治理组的", "青春志愿服务"),  # a wrong premise gets the right group
])
def test_a_confirm_question_about_a_units_group_is_answered_from_the_unit(wechat, question, group):
    reply = ask(wechat, question)
    assert group in reply and "成员单位" in reply, reply


def test_a_unit_answer_also_names_the_lead_unit(wechat):
    reply = ask(wechat, "普陀在哪个共同体")
    assert "青春社区治理" in reply and "牵头单位是静安" in reply


def test_our_unit_is_the_members_registered_unit(wechat):
    assert "还不知道你在哪个单位" in ask(wechat, "我们单位在哪个共同体", openid="oAnswers0002")
    assert ask(wechat, "绑定 李四 崇明区城管执法局", openid="oAnswers0002").startswith("已登记")
    reply = ask(wechat, "我们单位在哪个共同体", openid="oAnswers0002")
    assert "青春执法创新" in reply and "崇明" in reply


# --- 4. ties: never a silent pick -------------------------------------------------------------

def test_entries_that_tie_are_offered_as_a_numbered_choice(rt, wechat, db):
    now = rt.clock.now()
    for key, answer in (("a", "甲方案的答复。"), ("b", "乙方案的答复。")):
        kb_store.save_entry(db, {"id": f"org-tie-{key}", "question": "青年夜跑团怎么参加",
                                 "answer": answer, "source": "union2025"}, "tester", now)
    engine_for(rt).reload_if_changed(force=True)
    reply = ask(wechat, "青年夜跑团怎么参加")
    assert reply.startswith("你想问的是哪一个") and "\n1. " in reply and "\n2. " in reply
    assert unanswered(db) == 0
    assert ask(wechat, "2") in {engine_for(rt).format(engine_for(rt).entry(f"org-tie-{k}"))
                                for k in "ab"}


# --- 5. details the documents do not state are in tests/test_knowledge.py ----------------------

# --- 6. chit-chat; 7. command typos -------------------------------------------------------------

@pytest.mark.parametrize("text", ["谢谢", "收到", "好的", "👍", "哈哈", "在吗", "再见", "谢谢啦！"])
def test_small_talk_gets_a_short_reply_and_is_not_logged(wechat, db, text):
    reply = ask(wechat, text)
    assert reply and not reply.startswith("没有找到") and len(reply) < 60
    assert unanswered(db) == 0


def test_a_bare_number_with_no_list_pending_says_what_numbers_are_for(wechat, db):
    assert "数字用来选择" in ask(wechat, "3")
    assert unanswered(db) == 0


@pytest.mark.parametrize("typed,meant", [
    ("报明", "报名"), ("报名🙏", "报名"), ("取消保名", "取消报名"), ("签倒 123456", "签到 123456"),
])
def test_command_typos_are_the_commands_they_resemble(wechat, db, typed, meant):
    reply = ask(wechat, typed, openid="oAnswers0003")
    assert reply == ask(wechat, meant, openid="oAnswers0004")
    assert not reply.startswith(("没有找到", "你是不是想问", "你想问的是哪一个"))  # a command's reply
    assert unanswered(db) == 0


# --- 8. which year ---------------------------------------------------------------------------

def test_this_year_questions_say_which_years_plan_answers(rt, wechat):
    rt.clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=rt.settings.tz))
    reply = ask(wechat, "今年体检几月")
    assert "9月" in reply and "2025年文件中的安排" in reply and "2026年" in reply
    assert "2025年文件中的安排" not in ask(wechat, "体检几月")


# --- the organisers' loop: every phrasing answers its own entry --------------------------------

def test_every_phrasing_of_every_default_entry_is_answered_by_that_entry():
    engine = Engine()
    wrong = [(e.id, p, engine.answer(p).entry_id) for e in engine.entries()
             for p in e.phrasings if engine.answer(p).entry_id != e.id]
    assert wrong == []


def test_a_console_entry_answers_its_own_phrasings_despite_facets(rt, wechat, db):
    kb_store.save_entry(db, {"id": "org-huifei", "question": "工会会费怎么交",
                             "alts": ["体检在哪家医院"], "answer": "会费由各基层工会按月从工资中代扣。",
                             "source": "union2025"}, "tester", rt.clock.now())
    engine_for(rt).reload_if_changed(force=True)
    assert ask(wechat, "工会会费怎么交").startswith("会费由各基层工会")
    assert ask(wechat, "体检在哪家医院").startswith("会费由各基层工会")


def test_tappable_suggestions_are_off_by_default_and_links_when_on(wechat, make_app):
    from simulator.client import WeChatClient
    from tests.conftest import TOKEN

    plain = ask(wechat, "我想了解一下联盟")
    assert "\n1. " in plain and "weixin://" not in plain
    client = WeChatClient(TOKEN, app=make_app(tappable_suggestions=True))
    linked = client.text("oAnswers0005", "我想了解一下联盟").text
    assert '<a href="weixin://bizmsgmenu?msgmenucontent=1&msgmenuid=1">1. ' in linked


# --- 8. a new year's plan, loaded without code ---------------------------------------------------

def test_a_loaded_plan_answers_its_year_and_other_years_say_which_plan(rt, wechat, db, tmp_path):
    from click.testing import CliRunner

    import bot
    from tests.conftest import ROOT

    rt.clock.set(datetime(2026, 9, 10, 9, 0, tzinfo=rt.settings.tz))
    before = ask(wechat, "下个月有什么安排")
    assert "2026年10月" in before and "2026年的计划还没有载入" in before and "2025年计划" in before
    runner = CliRunner(env={"BOT_DATA_DIR": str(rt.settings.data_dir)})
    result = runner.invoke(bot.cli, ["kb", "calendar", str(ROOT / "docs" / "plan-example-2026.yaml")])
    assert result.exit_code == 0, result.output
    after = ask(wechat, "下个月有什么安排", openid="oAnswers0009")
    assert "组织体检（10月）" in after and "2026年计划" in after and "还没有载入" not in after
    assert "（示例）2026年工会工作计划" in after
    projects = ask(wechat, "二季度有什么项目", openid="oAnswers0010")  # the same project records
    assert projects.startswith("2026年二季度的联盟项目") and "举办执法案例研讨活动" in projects
    bad = tmp_path / "bad.yaml"
    bad.write_text("year: 2026\ncitation: x\nitems:\n  - {key: a, name: b, months: [13]}\n", "utf-8")
    result = runner.invoke(bot.cli, ["kb", "calendar", str(bad)])
    assert result.exit_code != 0 and "1-12" in result.output


def test_a_clear_lead_just_below_the_threshold_is_offered_with_its_answer(wechat, db):
    reply = ask(wechat, "每年啥时候去做身体检查呀")
    assert reply.startswith("你是不是想问：「职工体检什么时候组织")
    assert "9月" in reply and "——出处：《" in reply
    assert unanswered(db) == 0


# --- 5 (more). what a question asks, judged beyond the words it uses ----------------------------

@pytest.mark.parametrize("question", [
    "靠谱校园合伙人365计划里青岛那2所高校是哪两所",  # the entry counts them, never names them
    "执法人员“两个评价模型”具体是哪两个模型",
    "安全科普产品是做视频还是做手册",  # a choice the entry names neither side of
    "健步走拿第一有奖品吗 奖啥",
    "60学时24学分没修满会怎么处理",
    "最美城管人评选怎么投票",
    "2023年那次为期两个月的作风纪律教育整顿具体是几月到几月",
    "两单两书是啥意思",  # named, never explained
    "2023年普陀区局查处生活垃圾分类案件具体是多少起",  # the figure is the system's total
    "金山区城管团组织在法治专研组里具体负责哪个项目",  # the plan gives no member's share
    "五个共同体去年哪个组评比第一",
    "2023年查处的案件比2022年多还是少",
    "推报参评市青年五四奖章的7名优秀青年最后有几人获奖",  # recommended is not awarded
    "职工互助保障能不能给我孩子也买一份",
    "十大赛道除了法治建设、数字化转型、长三角一体化，另外七个赛道是什么",  # the rest of a list
    "基层中队新闻发言人制度从什么时候开始实施",  # planned, never dated
    "杨欣然委员是哪个界别的",  # named, never described
    "普陀“社区侠”项目是干啥的",  # named, never described
    "工作满10年年休假有几天",  # outside.yaml: no document covers leave
    "队员被外借超过多久算长期外借",
    "基层中队新闻发言人制度先在哪些中队试点",  # a list of 中队 is nowhere in the entry
])
def test_a_detail_beyond_the_entry_is_declined_however_it_is_asked(wechat, db, question):
    reply = ask(wechat, question)
    assert reply.startswith("没有找到"), reply
    assert db.execute("SELECT count(*) FROM unanswered WHERE question = ?",
                      [question]).fetchone()[0] == 1


@pytest.mark.parametrize("question,must", [
    ("党建要点提到要推进哪两类执法事项划转", "燃气"),  # "A和B" names two
    ("“诚城”的实践指向是哪四个字", "知行合一"),
    ("三个品牌宣传活动是哪三个", "开放日"),  # the list runs up to the count
    ("请问2023年建筑垃圾案件total查了多少起", "16027"),  # an English word the knowledge never uses
    ("执法保障组牵头的是嘉定还是青浦", "嘉定"),
    ("执法创新共同体的牵头单位是哪家", "浦东"),  # 哪家 asks which unit, not where
    ("普陀重点打造了几个青春社区", "10个"),  # 普陀's own reply: its figures are 普陀's
    ("小循环是啥意思", "跨街镇"),
    ("强基行动具体干啥", "书记"),
    ("今年疗休养是几月份 我好跟科里提前请假", "5月"),
    ("2024年党建工作要点提出要推进哪两类执法事项划转", "燃气"),  # naming the document is on topic
    ("2023年社会满意度郊区组哪几个区局靠前", "奉贤"),  # 奉贤、闵行、嘉定区局: items end like the noun  # 请假 beside a real topic is incidental
    ("成员单位之间跨界合作交流一年最多能搞几次", "2次"),  # 最多 here is a limit, not a ranking
    ("需求征集机制中原则上采用的“1+1”模式具体指什么", "定向揭榜"),  # explained after a comma
])
def test_lists_choices_and_counts_that_the_entry_does_give_are_answered(wechat, question, must):
    reply = ask(wechat, question)
    assert not reply.startswith("没有找到"), reply
    assert must in reply, reply
