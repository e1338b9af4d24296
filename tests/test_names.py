"""Real names (issue 12 item 5), through the webhook's `绑定` and the sign-up profile step."""
from __future__ import annotations

from datetime import timedelta

import pytest

from activities import service
from handlers.profile import NAME_RULE
from storage import members

OPENID = "oNameMember01"


@pytest.mark.parametrize("typed,stored", [
    ("张三", "张三"),
    ("欧阳娜娜", "欧阳娜娜"),
    ("阿依古丽·买买提", "阿依古丽·买买提"),
    ("阿依古丽・买买提", "阿依古丽·买买提"),  # the Japanese-keyboard dot
    ("阿依古丽•买买提", "阿依古丽·买买提"),  # the bullet some phones give
    ("阿依古丽·买买提·阿不都热合曼·艾尔肯江", "阿依古丽·买买提·阿不都热合曼·艾尔肯江"),
    ("Anna", "Anna"),
    ("Anna Smith", "Anna Smith"),
    ("Mary-Jane O'Neil", "Mary-Jane O'Neil"),
])
def test_real_names_are_accepted(wechat, db, typed, stored):
    reply = wechat.text(OPENID, f"绑定 {typed} 虹口区城管执法局").text
    assert reply.startswith(f"已登记：{stored}，虹口区城管执法局")
    member = members.get(db, OPENID)
    assert (member["name"], member["unit"]) == (stored, "虹口区城管执法局")


@pytest.mark.parametrize("typed", ["张三3", "X", "张@三", "司马相如如如如", "·买买提",
                                   "阿依古丽·买买提·阿不都热合曼·艾尔肯江·木拉提", "Anna2",
                                   "★小明★"])
def test_digits_symbols_and_overlong_names_are_refused_with_an_example(wechat, db, typed):
    reply = wechat.text(OPENID, f"绑定 {typed} 虹口区城管执法局").text
    assert reply.startswith(NAME_RULE)
    assert "如 阿依古丽·买买提" in reply and "如 Anna Smith" in reply
    member = members.get(db, OPENID)
    assert member is None or member["name"] is None


def test_a_dotted_name_signs_up_in_the_profile_step(wechat, rt, db):
    now = rt.clock.now()
    aid = service.create_activity(db, title="社区青年志愿服务日", now=now,
                                  start=now + timedelta(days=3))
    wechat.text(OPENID, "报名 志愿服务日")
    done = wechat.text(OPENID, "阿依古丽・买买提 虹口区城管执法局").text
    assert done.startswith("已登记：阿依古丽·买买提，虹口区城管执法局。") and "报名成功" in done
    assert [s["name"] for s in service.signup_list(db, aid)] == ["阿依古丽·买买提"]
