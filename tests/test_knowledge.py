"""The knowledge base as members meet it: through the webhook, in their own words."""
from __future__ import annotations

import shutil
from datetime import datetime

import pytest

from knowledge import engine_for
from knowledge.data import DATA_DIR, load_entries, load_sources
from knowledge.engine import Engine
from knowledge.ingest import IngestError, ingest_file
from knowledge.normalize import Normalizer
from storage import knowledge as kb_store
from tests.conftest import ROOT

SEEDS = ROOT.parent / "shared" / "seeds"
SH = "Asia/Shanghai"


@pytest.fixture(scope="module")
def engine():
    return Engine()


# --- normalisation ---------------------------------------------------------------------

@pytest.mark.parametrize("typed,expected", [
    ("ＡＢＣ１２３？", "abc123"),  # full width
    ("體檢幾月", "体检几月"),  # traditional
    ("体检几月😄😄！！", "体检几月"),  # emoji, punctuation
    ("请问一下体检几月呀", "体检几月"),  # fillers
    ("公会的体检", "工会的体检"),  # homophone typo
    ("红口牵头吗", "虹口牵头吗"),
    ("疗养什么时候", "疗休养什么时候"),
    ("进博会保障", "进博会保障"),  # a canonical form is not rewritten from inside ("进博")
    ("二〇二五年", "2025年"),
    ("24年计划", "2024年计划"),
])
def test_normalisation(engine, typed, expected):
    assert engine.normalize(typed) == expected


def test_one_character_synonyms_do_not_rewrite_inside_words():
    norm = Normalizer({"共同体": ["组"]})
    assert norm.normalize("组织") == "组织"


# --- answers through the webhook ------------------------------------------------------------

def ask(wechat, text, openid="oAsker00001"):
    return wechat.text(openid, text).text


@pytest.mark.parametrize("question,must", [
    ("青春志愿服务谁牵头", ["奉贤"]),
    ("奉贤牵头的是哪个共同体", ["青春志愿服务"]),
    ("宝山在哪个组", ["青春社区治理"]),
    ("闵行属于哪个共同体", ["青春志愿服务"]),
    ("执法创新组成员单位有哪些", ["总队", "长宁", "崇明"]),
    ("科技信息处的青年指导哪个共同体", ["青春执法创新"]),
    ("我是数据员该去哪个组", ["青春执法创新"]),
    ("进博会青年突击队是哪个组搞的 几季度", ["青春执法保障", "四季度"]),
    ("法治专研那组是不是红口牵头", ["虹口"]),
])
def test_structured_questions_both_ways(wechat, question, must):
    reply = ask(wechat, question)
    assert "没有找到" not in reply
    for word in must:
        assert word in reply
    assert "沪城管团〔2025〕2号" in reply


@pytest.mark.parametrize("question,must,doc_no", [
    ("公会体检几月份呀😄", "9月", "沪城管工〔2025〕1号"),
    ("疗修养啥时候", "5月", "沪城管工〔2025〕1号"),
    ("2023年垃圾分类查处了多少起案件", "29431", "沪城管执〔2024〕4号"),
    ("一长五员指的是哪些人", "数据员", "沪城管执党组〔2024〕5号"),
    ("365计划有多少大学生参加", "98", "第153089号提案"),
])
def test_answers_are_sourced(wechat, question, must, doc_no):
    reply = ask(wechat, question)
    assert must in reply and "——出处：" in reply and doc_no in reply


def test_every_entry_cites_a_known_document_by_title_and_number(engine):
    sources = load_sources()
    for entry in load_entries():
        assert entry.source in sources, entry.id
        text = engine.format(entry)
        assert sources[entry.source].doc_no in text and sources[entry.source].title in text


# --- time-aware schedule -------------------------------------------------------------------

def test_this_month_and_next_quarter_are_relative_to_today(rt, wechat):
    november = ask(wechat, "这个月有什么活动")  # BOT_FAKE_NOW is 2026-11-21
    assert "2026年11月" in november and "进博会青年突击队" in november
    assert "集体生日会" in november and "女职工专题活动" not in november
    next_quarter = ask(wechat, "下个季度呢")
    assert "2027年一季度" in next_quarter and "女职工专题活动" in next_quarter
    assert "冬送温暖" in next_quarter and "进博会" not in next_quarter
    rt.clock.set(datetime(2027, 3, 5, 9, 0, tzinfo=rt.settings.tz))
    march = ask(wechat, "本月有啥安排", openid="oAsker00002")
    assert "2027年3月" in march and "女职工专题活动" in march and "组织体检" not in march


def test_schedule_lists_published_activities_of_the_period(rt, wechat, db):
    from activities import service

    start = datetime(2026, 11, 28, 9, 0, tzinfo=rt.settings.tz)
    activity_id = service.create_activity(db, title="青年志愿服务日", now=rt.clock.now(),
                                          start=start, capacity=20, location="静安")
    service.open_activity(db, activity_id, rt.clock.now())
    assert "青年志愿服务日" in ask(wechat, "这个月有什么活动")


# --- declining ------------------------------------------------------------------------------

@pytest.mark.parametrize("question", [
    "杭州城管招不招人", "单位食堂几点开饭", "年终奖什么时候发", "公积金怎么提取",
])
def test_out_of_scope_is_declined_never_guessed(wechat, question):
    reply = ask(wechat, question)
    assert reply.startswith("没有找到")
    assert "——出处" not in reply


@pytest.mark.parametrize("question,stated", [
    ("体检在哪家医院做", "9月"),
    ("集体生日会发什么礼物", "每季度"),
    ("瑜伽课每周几上几点开始", "瑜伽"),
    ("疗休养能带家属吗", "5月"),
    ("疗休养一般去几天", "5月"),
    ("执法资格考试考多少分及格", "97%"),
    ("2024年实际拆了多少块违法户外广告", "480"),
])
def test_a_detail_the_documents_do_not_state_is_declined_with_what_they_do_state(
        wechat, db, question, stated):
    reply = ask(wechat, question)
    assert reply.startswith("没有找到"), reply
    assert stated in reply and "——出处：《" in reply
    assert db.execute("SELECT count(*) FROM unanswered WHERE question = ?",
                      [question]).fetchone()[0] == 1


def test_decline_offers_numbered_suggestions_and_a_number_answers(rt, wechat, db):
    reply = ask(wechat, "我想了解一下联盟")
    assert "你是不是想问" in reply and "\n1. " in reply and "\n2. " in reply
    second = reply.split("\n2. ")[1].split("\n")[0]
    suggested = next(e for e in engine_for(rt).entries() if e.question == second)
    assert ask(wechat, "2") == engine_for(rt).format(suggested)
    row = db.execute("SELECT count, status FROM unanswered").fetchone()
    assert row == (1, "open")
    ask(wechat, "我想了解一下联盟🤔")
    assert db.execute("SELECT count FROM unanswered").fetchone()[0] == 2


def test_a_number_without_suggestions_is_not_taken_as_a_choice(wechat, db):
    reply = ask(wechat, "3", openid="oFresh00001")
    assert "数字用来选择" in reply and "——出处" not in reply
    assert db.execute("SELECT count(*) FROM unanswered").fetchone()[0] == 0


# --- long answers -------------------------------------------------------------------------

def test_long_answer_is_split_with_more(rt, wechat, db):
    long = "；".join(f"第{i}项安排写得很详细，包括时间、部门和要求" for i in range(120)) + "。"
    kb_store.save_entry(db, {"id": "org-long", "question": "超长测试条目有哪些安排",
                             "alts": ["超长测试条目"], "answer": long, "source": "union2025"},
                        "tester", rt.clock.now())
    engine_for(rt).reload_if_changed(force=True)
    first = ask(wechat, "超长测试条目有哪些安排")
    assert len(first.encode()) <= 2048 and "回复 更多" in first
    pages = [first]
    while "回复 更多" in pages[-1]:
        pages.append(ask(wechat, "更多"))
        assert len(pages[-1].encode()) <= 2048
    assert "——出处：《2025年上海市城管执法局工会工作计划》" in pages[-1]
    assert len(pages) >= 3


# --- organisers' edits and ingestion take effect without a restart ------------------------

def test_alias_from_the_console_is_answered_without_restart(rt, wechat, db):
    assert ask(wechat, "城管小伙伴过生日工会管不管").startswith("没有找到")
    kb_store.add_alias(db, "城管小伙伴过生日工会管不管", "union-xm-shengrihui", "tester",
                       rt.clock.now())
    assert rt.knowledge.wait_until_current(timeout=15)  # rebuilt by the watcher, off the request path
    assert "集体生日会" in ask(wechat, "城管小伙伴过生日工会管不管")


def test_editing_a_knowledge_file_takes_effect_without_restart(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    engine = Engine(data)
    assert not engine.answer("团建共同体的吉祥物叫什么").confident
    extra = data / "entries" / "extra.yaml"
    extra.write_text("- id: extra-mascot\n  question: 团建共同体的吉祥物叫什么\n"
                     "  alts: [联盟吉祥物]\n  answer: 测试用吉祥物叫城城。\n  source: alliance2025\n",
                     encoding="utf-8")
    engine.reload_if_changed(force=True)
    assert "城城" in engine.answer("团建共同体的吉祥物叫什么").text


def test_a_broken_file_keeps_the_previous_build(tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    engine = Engine(data)
    (data / "entries" / "broken.yaml").write_text("- id: [unclosed\n", encoding="utf-8")
    assert engine.reload_if_changed(force=True) is False
    assert engine.answer("体检几月").confident
    assert "reload failed" in caplog.text


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds not present")
def test_ingest_the_five_seed_files(rt, db):
    docs = [ingest_file(db, path, rt.clock.now()) for path in sorted(SEEDS.glob("0*.txt"))]
    assert len(docs) == 5
    numbers = {d.doc_no for d in docs}
    assert numbers == {"沪城管团〔2025〕2号", "沪城管执党组〔2024〕5号", "沪城管执〔2024〕4号",
                       "沪城管工〔2025〕1号", "第153089号提案"}
    assert all(len(d.passages) >= 10 for d in docs)
    assert all(len(p) <= 400 for d in docs for p in d.passages)
    stored = kb_store.documents(db)
    assert len(stored) == 5
    # ingesting again replaces, not duplicates
    ingest_file(db, sorted(SEEDS.glob("0*.txt"))[0], rt.clock.now())
    assert sum(d["passages"] for d in kb_store.documents(db)) == sum(len(d.passages) for d in docs)


def test_an_ingested_document_answers_as_a_second_tier(rt, wechat, db, tmp_path):
    doc = tmp_path / "读书会通知.md"
    doc.write_text("# 关于举办2026年城管青年读书会的通知\n\n沪城管团〔2026〕7号\n\n"
                   "2026年城管青年读书会定于12月5日在静安区图书馆举办，共安排120个名额，"
                   "由各区局团组织推荐青年参加。", encoding="utf-8")
    assert ask(wechat, "城管青年读书会在哪里举办").startswith("没有找到")
    ingest_file(db, doc, rt.clock.now())
    assert rt.knowledge.wait_until_current(timeout=15)
    reply = ask(wechat, "城管青年读书会在哪里举办", openid="oAsker00003")
    assert "静安区图书馆" in reply and "沪城管团〔2026〕7号" in reply


def test_ingest_rejects_unsupported_and_empty_files(db, tmp_path):
    with pytest.raises(IngestError):
        ingest_file(db, tmp_path / "missing.txt", datetime.now().astimezone())
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF")
    with pytest.raises(IngestError):
        ingest_file(db, bad, datetime.now().astimezone())
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(IngestError):
        ingest_file(db, empty, datetime.now().astimezone())


def test_ingest_reads_docx(db, tmp_path, rt):
    import docx

    d = docx.Document()
    d.add_paragraph("关于印发《测试通知》的通知")
    d.add_paragraph("沪城管工〔2026〕3号")
    d.add_paragraph("职工乒乓球比赛定于10月举办。" * 3)
    path = tmp_path / "t.docx"
    d.save(str(path))
    doc = ingest_file(db, path, rt.clock.now())
    assert doc.title == "测试通知" and doc.doc_no == "沪城管工〔2026〕3号"
