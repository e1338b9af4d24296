"""需求征集: members raise needs in the chat; organisers adopt (定向揭榜 / 自由揭榜), claim,
finish or decline them in the console; the member hears of each change through the outbox."""
from __future__ import annotations

import csv
import io
import sqlite3

import pytest

from alliance import needs as service
from storage import deliveries
from storage import needs as store
from tests.conftest import dispatch_all

ZHANG = "oNeedZhang001"
LI = "oNeedLiSi0002"
HOSTILE = '<script>alert("x")</script>=HYPERLINK("http://evil.example","点我")'


def bind(wechat, openid: str, unit: str = "虹口区城管执法局", name: str = "张三") -> None:
    assert wechat.text(openid, f"绑定 {name} {unit}").text.startswith("已登记")


def needs_of(db, openid: str) -> list[dict]:
    return list(db.query("SELECT * FROM needs WHERE openid = ? ORDER BY id", [openid]))


@pytest.fixture
def raised(wechat, db):
    """A need from a 虹口 member (青春法治专研), raised through the chat."""
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "提需求 希望组织一次无人机执法观摩活动")
    return needs_of(db, ZHANG)[-1]


# --- the chat ------------------------------------------------------------------------------

def test_a_need_is_recorded_with_the_unit_and_its_group(wechat, db):
    bind(wechat, ZHANG, "奉贤区城管执法局执法一中队")
    reply = wechat.text(ZHANG, "提需求 希望多组织爱心暑托班志愿服务").text
    assert "已收到你的需求" in reply and "青春志愿服务" in reply
    [need] = needs_of(db, ZHANG)
    assert (need["unit"], need["grp"], need["status"]) == ("奉贤区城管执法局执法一中队", "zhiyuan",
                                                           "new")
    assert need["content"] == "希望多组织爱心暑托班志愿服务"
    assert [e["status"] for e in store.events(db, need["id"])] == ["new"]


def test_without_a_profile_the_member_is_asked_to_register_and_nothing_is_recorded(wechat, db):
    reply = wechat.text(ZHANG, "提需求 希望组织案例研讨").text
    assert "请先登记" in reply and "绑定" in reply
    assert needs_of(db, ZHANG) == []


def test_bare_command_asks_for_the_text_and_the_next_message_is_the_need(wechat, db):
    bind(wechat, ZHANG)
    assert "请直接回复你的需求" in wechat.text(ZHANG, "提需求").text
    assert "已收到你的需求" in wechat.text(ZHANG, "希望开展一次执法案例研讨").text
    assert [n["content"] for n in needs_of(db, ZHANG)] == ["希望开展一次执法案例研讨"]
    # the dialog is over: the next text is a question again, not a need
    wechat.text(ZHANG, "体检几月")
    assert len(needs_of(db, ZHANG)) == 1


def test_bare_command_then_cancel_or_another_command_records_nothing(wechat, db):
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "提需求")
    assert "已退出" in wechat.text(ZHANG, "取消").text
    wechat.text(ZHANG, "提需求")
    assert "你还没有提交过需求" in wechat.text(ZHANG, "我的需求").text
    assert needs_of(db, ZHANG) == []


@pytest.mark.parametrize("text,words", [("提需求 太短", "太短"),
                                        ("提需求 " + "长" * 501, "500 字以内")])
def test_unusable_text_gets_a_clear_reply_and_no_record(wechat, db, text, words):
    bind(wechat, ZHANG)
    assert words in wechat.text(ZHANG, text).text
    assert needs_of(db, ZHANG) == []


def test_the_same_need_sent_twice_is_one_need(wechat, db):
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "提需求 希望组织无人机执法观摩")
    assert "已经收到过" in wechat.text(ZHANG, "提需求 希望组织无人机执法观摩").text
    assert len(needs_of(db, ZHANG)) == 1


def test_a_unit_outside_the_alliance_is_recorded_ungrouped(wechat, db):
    bind(wechat, ZHANG, "市局机关")
    assert "暂未对应到共同体" in wechat.text(ZHANG, "提需求 希望组织青年读书会").text
    assert needs_of(db, ZHANG)[0]["grp"] is None


def test_my_needs_lists_each_with_its_status_and_reason(wechat, db, rt, raised):
    wechat.text(ZHANG, "提需求 希望增加执法案例分享")
    service.decline(db, raised["id"], "已纳入市局统一安排", "组织者乙", rt.clock.now())
    reply = wechat.text(ZHANG, "我的需求").text
    assert reply.index("希望增加执法案例分享") < reply.index("无人机执法观摩")  # newest first
    assert "新提交" in reply and "未采纳（原因：已纳入市局统一安排）" in reply


# --- the console ---------------------------------------------------------------------------

def test_the_list_shows_needs_by_group_and_filters_by_status(organiser, wechat, db, raised):
    bind(wechat, LI, "静安区城管执法局", "李四")
    wechat.text(LI, "提需求 希望开展社区citywalk")
    html = organiser.get("/admin/needs/").get_data(as_text=True)
    fazhi = html.index('id="g-fazhi"')
    shequ = html.index('id="g-shequ"')
    assert fazhi < html.index("无人机执法观摩") < shequ < html.index("社区citywalk")
    html = organiser.get("/admin/needs/?grp=shequ").get_data(as_text=True)
    assert "社区citywalk" in html and "无人机执法观摩" not in html
    html = organiser.get("/admin/needs/?status=rejected").get_data(as_text=True)
    assert "社区citywalk" not in html and "无人机执法观摩" not in html
    assert organiser.get("/admin/needs/?grp=nope").status_code == 404


def test_directed_adoption_makes_a_project_assigns_the_unit_and_tells_the_member(
        organiser, wechat, db, rt, fake_api, raised):
    resp = organiser.post(f"/admin/needs/{raised['id']}/adopt", {
        "mode": "directed", "project": "无人机执法观摩", "year": "2026", "quarter": "4",
        "unit": "徐汇区城管执法部门团组织"})
    assert resp.status_code == 302
    need = service.get(db, raised["id"])
    assert (need["status"], need["mode"], need["claimed_unit"]) == \
        ("claimed", "directed", "徐汇区城管执法部门团组织")
    project = db.execute("SELECT year, grp, name, type, quarters FROM projects WHERE id = ?",
                         [need["project_id"]]).fetchone()
    assert project == (2026, "fazhi", "无人机执法观摩", "需求项目", "4")
    assert deliveries.get(db, f"need:{raised['id']}:claimed")["openid"] == ZHANG
    dispatch_all(rt)
    [pushed] = fake_api.inbox(ZHANG)
    assert "已揭榜" in pushed["content"] and "徐汇区" in pushed["content"]
    assert [e["status"] for e in store.events(db, raised["id"])] == ["new", "adopted", "claimed"]
    assert "我的需求" in pushed["content"]


def test_open_adoption_then_the_first_claim_wins_and_a_second_is_refused(
        organiser, db, raised):
    organiser.post(f"/admin/needs/{raised['id']}/adopt", {
        "mode": "open", "project": "无人机执法观摩", "year": "2026", "quarter": "4"})
    assert service.get(db, raised["id"])["status"] == "adopted"
    html = organiser.get(f"/admin/needs/{raised['id']}").get_data(as_text=True)
    assert "自由揭榜" in html and 'id="claim"' in html
    organiser.post(f"/admin/needs/{raised['id']}/claim", {"unit": "金山区城管执法部门团组织"})
    resp = organiser.post(f"/admin/needs/{raised['id']}/claim", {"unit": "自贸区城管执法部门团组织"},
                          follow_redirects=True)
    assert "已被金山区城管执法部门团组织揭榜" in resp.get_data(as_text=True)
    need = service.get(db, raised["id"])
    assert (need["status"], need["claimed_unit"], need["claimed_by"]) == \
        ("claimed", "金山区城管执法部门团组织", "组织者乙")
    assert db.execute("SELECT count(*) FROM need_claims").fetchone()[0] == 1


def test_first_claim_wins_is_a_database_constraint(db, rt, raised):
    store.insert_claim(db, raised["id"], "金山区城管执法部门团组织", "甲", rt.clock.now())
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_claim(db, raised["id"], "徐汇区城管执法部门团组织", "乙", rt.clock.now())


def test_decline_needs_a_reason_which_the_member_is_told(organiser, db, rt, fake_api, raised):
    resp = organiser.post(f"/admin/needs/{raised['id']}/decline", {"reason": " "},
                          follow_redirects=True)
    assert "请写明原因" in resp.get_data(as_text=True)
    assert service.get(db, raised["id"])["status"] == "new"
    organiser.post(f"/admin/needs/{raised['id']}/decline", {"reason": "已纳入市局统一安排"})
    assert service.get(db, raised["id"])["status"] == "rejected"
    dispatch_all(rt)
    assert "未采纳（原因：已纳入市局统一安排）" in fake_api.inbox(ZHANG)[0]["content"]


def test_finish_after_claim_and_no_second_adoption(organiser, db, rt, fake_api, raised):
    organiser.post(f"/admin/needs/{raised['id']}/adopt", {
        "mode": "directed", "project": "观摩", "year": "2026", "quarter": "4",
        "unit": "虹口区城管执法局团组织"})
    resp = organiser.post(f"/admin/needs/{raised['id']}/adopt", {
        "mode": "open", "project": "观摩二", "year": "2026", "quarter": "4"},
        follow_redirects=True)
    assert "不能再采纳" in resp.get_data(as_text=True)
    organiser.post(f"/admin/needs/{raised['id']}/finish")
    assert service.get(db, raised["id"])["status"] == "done"
    dispatch_all(rt)
    assert [("已揭榜" in m["content"], "已完成" in m["content"])
            for m in fake_api.inbox(ZHANG)] == [(True, False), (False, True)]


@pytest.mark.parametrize("form,words", [
    ({"mode": "directed", "project": "观摩", "year": "2026", "quarter": "4"}, "承接的单位"),
    ({"mode": "directed", "project": "观摩", "year": "2026", "quarter": "4",
      "unit": "不存在的单位"}, "承接的单位"),
    ({"mode": "open", "project": "", "year": "2026", "quarter": "4"}, "项目名称"),
    ({"mode": "open", "project": "观摩", "year": "2026", "quarter": "9"}, "季度"),
    ({"mode": "maybe", "project": "观摩", "year": "2026", "quarter": "4"}, "定向揭榜或自由揭榜"),
    ({"mode": "open", "project": "观摩", "year": "abc", "quarter": "4"}, "四位数字年份"),
])
def test_bad_adoption_input_is_refused_and_nothing_changes(organiser, db, raised, form, words):
    resp = organiser.post(f"/admin/needs/{raised['id']}/adopt", form, follow_redirects=True)
    assert words in resp.get_data(as_text=True)
    assert service.get(db, raised["id"])["status"] == "new"
    assert db.execute("SELECT count(*) FROM projects WHERE type = '需求项目'").fetchone()[0] == 0
    assert deliveries.get(db, f"need:{raised['id']}:adopted") is None


def test_an_ungrouped_need_is_grouped_before_adoption(organiser, wechat, db):
    bind(wechat, LI, "市局机关", "李四")
    wechat.text(LI, "提需求 希望组织青年读书会")
    need = needs_of(db, LI)[0]
    resp = organiser.post(f"/admin/needs/{need['id']}/adopt", {
        "mode": "open", "project": "读书会", "year": "2026", "quarter": "4"},
        follow_redirects=True)
    assert "请先为它选择共同体" in resp.get_data(as_text=True)
    organiser.post(f"/admin/needs/{need['id']}/group", {"grp": "shequ"})
    organiser.post(f"/admin/needs/{need['id']}/adopt", {
        "mode": "open", "project": "读书会", "year": "2026", "quarter": "4"})
    assert service.get(db, need["id"])["status"] == "adopted"


def test_posts_without_the_csrf_token_change_nothing(app, organiser, db, raised):
    resp = organiser.client.post(f"/admin/needs/{raised['id']}/decline",
                                 data={"reason": "不需要"})
    assert resp.status_code == 403
    assert service.get(db, raised["id"])["status"] == "new"


def test_unknown_needs_are_404_and_members_cannot_reach_the_console(app, organiser):
    assert organiser.get("/admin/needs/99999").status_code == 404
    assert organiser.post("/admin/needs/99999/finish").status_code == 404
    assert app.test_client().get("/admin/needs/").status_code == 302


def test_hostile_text_is_escaped_on_pages_and_formula_safe_in_the_export(
        organiser, wechat, db):
    bind(wechat, ZHANG)
    wechat.text(ZHANG, "提需求 " + HOSTILE)
    need = needs_of(db, ZHANG)[0]
    for path in ("/admin/needs/", f"/admin/needs/{need['id']}"):
        html = organiser.get(path).get_data(as_text=True)
        assert "<script>" not in html and "&lt;script&gt;" in html
    cells = needs_cells(organiser)
    assert HOSTILE in cells  # it starts with '<', which is harmless: kept as typed
    wechat.text(ZHANG, '提需求 =HYPERLINK("http://evil.example","x")')
    cells = needs_cells(organiser)
    assert '\'=HYPERLINK("http://evil.example","x")' in cells  # a formula is written as text
    assert not any("张三" in cell for cell in cells)  # names stay out of the export


def needs_cells(organiser) -> list[str]:
    """Every cell of the needs export, as a spreadsheet reads the CSV."""
    text = organiser.post("/admin/needs/export").get_data().decode("utf-8-sig")
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_the_menu_button_starts_a_need(wechat, db):
    bind(wechat, ZHANG)
    assert "请直接回复你的需求" in wechat.event(ZHANG, "CLICK", "NEED_RAISE").text
    assert "已收到你的需求" in wechat.text(ZHANG, "希望组织无人机执法观摩").text
    assert "无人机执法观摩" in wechat.event(ZHANG, "CLICK", "MY_NEEDS").text


def test_simultaneous_claims_from_many_threads_leave_exactly_one_winner(rt, db, raised):
    import threading

    from storage import open_db

    service.adopt(db, raised["id"], mode="open", project_name="观摩", quarter=4, year=2026,
                  actor="组织者", now=rt.clock.now())
    units = ["金山区城管执法部门团组织", "徐汇区城管执法部门团组织", "自贸区城管执法部门团组织",
             "虹口区城管执法局团组织"] * 3
    results, start = [], threading.Barrier(len(units))

    def claim(unit):
        conn = open_db(rt.settings.db_path)
        start.wait()
        try:
            service.claim(conn, raised["id"], unit, "组织者", rt.clock.now())
            results.append(("won", unit))
        except service.AlreadyClaimed:
            results.append(("lost", unit))

    threads = [threading.Thread(target=claim, args=(u,)) for u in units]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [u for r, u in results if r == "won"]
    assert len(results) == len(units) and len(winners) == 1
    assert service.get(db, raised["id"])["claimed_unit"] == winners[0]
    assert db.execute("SELECT count(*) FROM need_events WHERE status = 'claimed'").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM deliveries WHERE dedupe_key LIKE 'need:%:claimed'"
                      ).fetchone()[0] == 1
