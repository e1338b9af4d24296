"""Polish found by trying the bot as a newcomer: knowledge search, 我的提醒, the terminal chat."""
from __future__ import annotations

import re

import pytest

from knowledge import engine_for
from simulator.terminal import HELP, local_command
from wechat import menu as menu_file


def test_knowledge_search_lists_entries_containing_the_words_first(organiser, rt):
    page = organiser.get("/admin/knowledge/?q=体检").get_data(as_text=True)
    listed = re.findall(r'href="/admin/knowledge/entries/([^"]+)"', page)
    eng = engine_for(rt)
    contains = {e.id for e in eng.entries()
                if "体检" in " ".join([*e.phrasings, *e.keywords, e.answer])}
    assert listed[0] == "union-xm-tijian"
    assert set(listed[:len(contains)]) == contains  # every exact match, before anything fuzzy


def test_my_reminders_is_a_short_list_a_line_each(wechat):
    me = "oChatter01"
    wechat.text(me, "订阅提醒")
    wechat.text(me, "退订提醒 体检")  # everything but one: the longest list a member can have
    lines = wechat.text(me, "我的提醒").text.split("\n")
    assert lines[0].startswith("活动提醒：开启")
    items = [line for line in lines if line.startswith("• ")]
    assert len(items) > 5 and "• 集体生日会（每季度）" in items
    assert all(len(line) <= 40 for line in lines), max(lines, key=len)


@pytest.mark.parametrize("line", ["/help", "/menu", "/foo"])
def test_the_terminal_chat_answers_its_own_commands(line):
    own = local_command(line, menu_file.load())
    assert own is not None
    if line == "/menu":
        assert "HANDOFF" in own and "联系工作人员 → 人工" in own and "SIGNUP" in own
    else:
        assert HELP in own


@pytest.mark.parametrize("line", ["/menu SIGNUP", "/follow", "体检几月", "帮助"])
def test_the_terminal_chat_sends_everything_else_to_the_bot(line):
    assert local_command(line, menu_file.load()) is None
