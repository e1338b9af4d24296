"""需求征集 as domain operations: a member raises a need; organisers adopt it as a project
(定向揭榜 to a unit, or 自由揭榜 for units to claim), mark it done, or decline it with a reason.

Each change is one `BEGIN IMMEDIATE` transaction that also records the event and queues the
member's push in the outbox, so a status never changes without its record and its message.
"""
from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from alliance import groups
from storage import deliveries
from storage import needs as store
from storage import projects as project_store
from storage.db import immediate

MIN_CHARS = 4
MAX_CHARS = 500
MEMBER_LIST = 10
MIN_YEAR, MAX_YEAR = 2000, 2100
STATUS_WORDS = {"new": "新提交", "adopted": "已采纳", "claimed": "已揭榜", "done": "已完成",
                "rejected": "未采纳"}
MODE_WORDS = {"directed": "定向揭榜", "open": "自由揭榜"}
PUSH_TITLE = "需求进展"
PUSH_EXPIRES = timedelta(days=30)  # a status push still worth sending this long after


class NeedError(Exception):
    """A domain error; str(exc) is the Chinese sentence for the member or organiser."""


class NeedNotFound(NeedError):
    def __init__(self, need_id):
        super().__init__(f"没有编号为 {need_id} 的需求")


class InvalidNeed(NeedError):
    """The text or the organiser's input cannot be used."""


class WrongStatus(NeedError):
    """The need is not in a state that allows this step (someone else moved it first)."""


class AlreadyClaimed(NeedError):
    def __init__(self, need: dict):
        self.need = need
        super().__init__(f"需求 {need['id']} 已被{need.get('claimed_unit') or '其他单位'}揭榜")


@dataclass
class Raised:
    need: dict
    duplicate: bool


def clean(text: str) -> str:
    """Full-width forms folded, control characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "")
    text = "".join(ch for ch in text if ch in "\n" or unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())


def raise_need(db: Database, openid: str, unit: str | None, content: str,
               now: datetime) -> Raised:
    """Record a member's need with the 共同体 of their registered unit.

    Raises InvalidNeed for text too short or too long."""
    content = clean(content)
    if len(content) < MIN_CHARS:
        raise InvalidNeed(f"需求内容太短，请至少写 {MIN_CHARS} 个字")
    if len(content) > MAX_CHARS:
        raise InvalidNeed(f"需求内容请控制在 {MAX_CHARS} 字以内（现在 {len(content)} 字）")
    group = groups.group_of_unit(unit)
    with immediate(db):
        same = store.same_open(db, openid, content)
        if same:
            return Raised(same, True)
        need_id = store.insert(db, openid, unit, group.key if group else None, content, now)
        store.add_event(db, need_id, "new", openid, None, now)
        return Raised(store.get(db, need_id), False)


def member_needs(db: Database, openid: str, limit: int = MEMBER_LIST) -> list[dict]:
    return store.of_member(db, openid, limit)


def get(db: Database, need_id: int) -> dict:
    need = store.get(db, need_id)
    if need is None:
        raise NeedNotFound(need_id)
    return need


def adopt(db: Database, need_id: int, *, mode: str, project_name: str, quarter: int,
          year: int, actor: str, now: datetime, unit: str | None = None) -> dict:
    """Adopt a new need as a project of its group: 定向揭榜 names the unit that takes it
    (the need is then 已揭榜), 自由揭榜 leaves it 已采纳 for a unit to claim.

    Raises InvalidNeed, WrongStatus, NeedNotFound."""
    if mode not in MODE_WORDS:
        raise InvalidNeed("请选择定向揭榜或自由揭榜")
    name = clean(project_name)[:60]
    if len(name) < 2:
        raise InvalidNeed("请填写项目名称")
    if quarter not in groups.QUARTER_WORDS:
        raise InvalidNeed("请选择项目所在的季度")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidNeed("年度应为四位数字年份")
    unit = clean(unit or "")
    if mode == "directed" and unit not in groups.unit_names():
        raise InvalidNeed("定向揭榜请选择承接的单位")
    with immediate(db):
        need = get(db, need_id)
        if need["status"] != "new":
            raise WrongStatus(f"需求 {need_id} 当前是“{STATUS_WORDS[need['status']]}”，不能再采纳")
        if not need["grp"]:
            raise InvalidNeed("这条需求的单位不在任何共同体，请先为它选择共同体")
        try:
            project_id = project_store.insert(db, year=year, grp=need["grp"], name=name,
                                              type_="需求项目", quarters=[quarter],
                                              created_by=actor, now=now)
        except sqlite3.IntegrityError as exc:
            raise InvalidNeed(f"本共同体 {year} 年已有名为“{name}”的项目，请换个名称") from exc
        store.set_status(db, need_id, "adopted", actor, now, mode=mode,
                         assigned_unit=unit if mode == "directed" else None,
                         project_id=project_id)
        store.add_event(db, need_id, "adopted", actor,
                        f"{MODE_WORDS[mode]}，立项“{name}”（{year}年{groups.QUARTER_WORDS[quarter]}）",
                        now)
        if mode == "directed":
            store.insert_claim(db, need_id, unit, actor, now)
            store.set_status(db, need_id, "claimed", actor, now)
            store.add_event(db, need_id, "claimed", actor, f"定向揭榜：{unit}", now)
        need = get(db, need_id)
        _tell(db, need, now)
    return need


def claim(db: Database, need_id: int, unit: str, actor: str, now: datetime) -> dict:
    """A unit takes an open (自由揭榜) need; the first claim wins (need_claims' primary key).

    Raises AlreadyClaimed, WrongStatus, InvalidNeed, NeedNotFound."""
    unit = clean(unit)
    if unit not in groups.unit_names():
        raise InvalidNeed("请选择揭榜的单位")
    with immediate(db):
        need = get(db, need_id)
        if need["claimed_unit"]:
            raise AlreadyClaimed(need)
        if need["status"] != "adopted" or need["mode"] != "open":
            raise WrongStatus(f"需求 {need_id} 不是待揭榜的自由揭榜需求")
        try:
            store.insert_claim(db, need_id, unit, actor, now)
        except sqlite3.IntegrityError as exc:
            raise AlreadyClaimed(get(db, need_id)) from exc
        store.set_status(db, need_id, "claimed", actor, now)
        store.add_event(db, need_id, "claimed", actor, f"自由揭榜：{unit}", now)
        need = get(db, need_id)
        _tell(db, need, now)
    return need


def finish(db: Database, need_id: int, actor: str, now: datetime) -> dict:
    """Raises WrongStatus unless the need was claimed (or adopted)."""
    with immediate(db):
        need = get(db, need_id)
        if need["status"] not in ("adopted", "claimed"):
            raise WrongStatus(f"需求 {need_id} 当前是“{STATUS_WORDS[need['status']]}”，不能标记完成")
        store.set_status(db, need_id, "done", actor, now)
        store.add_event(db, need_id, "done", actor, None, now)
        need = get(db, need_id)
        _tell(db, need, now)
    return need


def decline(db: Database, need_id: int, reason: str, actor: str, now: datetime) -> dict:
    """Raises InvalidNeed without a reason, WrongStatus unless the need is new."""
    reason = clean(reason)[:200]
    if len(reason) < 2:
        raise InvalidNeed("不采纳时请写明原因，成员会看到")
    with immediate(db):
        need = get(db, need_id)
        if need["status"] != "new":
            raise WrongStatus(f"需求 {need_id} 当前是“{STATUS_WORDS[need['status']]}”，不能再标为未采纳")
        store.set_status(db, need_id, "rejected", actor, now, reason=reason)
        store.add_event(db, need_id, "rejected", actor, reason, now)
        need = get(db, need_id)
        _tell(db, need, now)
    return need


def set_group(db: Database, need_id: int, group_key: str, actor: str, now: datetime) -> dict:
    """Put a need whose unit matched no 共同体 into one (organisers decide)."""
    group = groups.by_key(group_key)
    if group is None:
        raise InvalidNeed("请选择共同体")
    with immediate(db):
        need = get(db, need_id)
        store.set_group(db, need_id, group.key)
        store.add_event(db, need_id, need["status"], actor, f"归入{group.title}", now)
        return get(db, need_id)


def status_line(need: dict) -> str:
    """How the member reads a need's state."""
    status = need["status"]
    words = STATUS_WORDS.get(status, status)
    if status == "rejected" and need.get("reason"):
        return f"{words}（原因：{need['reason']}）"
    if status == "adopted" and need.get("mode") == "open":
        return f"{words}，自由揭榜中"
    if status in ("claimed", "done") and need.get("claimed_unit"):
        how = MODE_WORDS.get(need.get("mode") or "", "揭榜")
        return f"{words}（{how}：{need['claimed_unit']}）"
    return words


def _tell(db: Database, need: dict, now: datetime) -> None:
    """The member who raised the need hears of each status change (through the outbox)."""
    short = need["content"] if len(need["content"]) <= 20 else need["content"][:20] + "…"
    text = f"你提交的需求「{short}」有新进展：{status_line(need)}。回复“我的需求”查看全部。"
    deliveries.enqueue(db, dedupe_key=f"need:{need['id']}:{need['status']}",
                       openid=need["openid"], kind="need", title=PUSH_TITLE, text=text,
                       due_at=now, now=now, expires_at=now + PUSH_EXPIRES,
                       data={"need_id": need["id"], "keyword1": f"需求{STATUS_WORDS[need['status']]}",
                             "keyword3": short[:20]})
