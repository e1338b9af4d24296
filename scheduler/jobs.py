"""What the scheduler plans: activity reminders and recurring calendar reminders, into the outbox.

Planning is idempotent (dedupe keys are unique) and converges: run every minute, it adds what
is missing, moves what changed (an activity's new time), re-arms what became wanted again and
cancels what is no longer wanted (a cancelled activity or sign-up), each with its reason.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from clock import fmt_local, from_db, to_db
from knowledge import calendar
from storage import deliveries, immediate
from storage import reminders as store

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
RECURRING_HOUR = 9  # calendar reminders go out at 09:00 local on the 1st of the month
SUPERSEDED = "错过的提醒已由更近的一条代替，未发送"


def reminder_key(activity_id: int, openid: str, offset: timedelta) -> str:
    return f"reminder:{activity_id}:{openid}:{int(offset.total_seconds())}"


def recurring_key(item_key: str, year: int, month: int, openid: str) -> str:
    return f"recurring:{item_key}:{year:04d}-{month:02d}:{openid}"


def plan_all(rt: "Runtime") -> dict:
    """Every planning job, in order; returns what changed (for logs and tests)."""
    from alliance.reminders import plan_summary_due

    done = plan_activities(rt)
    done.update(plan_recurring(rt))
    done.update(plan_summary_due(rt))
    if any(done.values()):
        log.info("planned: %s", done)
    return done


# --- activity reminders ------------------------------------------------------------------

def plan_activity(rt: "Runtime", activity_id: int | None) -> dict:
    """Re-plan one activity now (it moved, was cancelled, a sign-up changed)."""
    if activity_id is None:
        return {}
    return plan_activities(rt, activity_id)


def plan_activities(rt: "Runtime", activity_id: int | None = None) -> dict:
    """Reminders at each of BOT_REMINDER_OFFSETS before the start, for each confirmed sign-up.

    A reminder whose time came before the member signed up is not planned. Of several reminders
    missed while the service was down, only the latest goes out (the others are recorded as
    dropped); one missed past the start is dropped by the dispatcher.
    """
    db = rt.db()
    now = rt.clock.now()
    tz = rt.settings.tz
    wanted: dict[str, dict] = {}
    by_pair: dict[tuple, list[dict]] = defaultdict(list)
    for r in store.upcoming_confirmed(db, now, activity_id):
        start = from_db(r["start_at"])
        confirmed = from_db(r["confirmed_at"])
        for offset in rt.settings.reminder_offsets:
            due = start - offset
            if confirmed and due < confirmed:
                continue
            spec = _reminder(r, start, due, offset, tz)
            wanted[spec["dedupe_key"]] = spec
            by_pair[(r["activity_id"], r["openid"])].append(spec)
    superseded = set()
    for specs in by_pair.values():
        missed = sorted((s for s in specs if s["due_at"] <= now), key=lambda s: s["due_at"])
        superseded.update(s["dedupe_key"] for s in missed[:-1])

    prefix = "reminder:" if activity_id is None else f"reminder:{activity_id}:"
    done = {"reminders_added": 0, "reminders_moved": 0, "reminders_cancelled": 0,
            "reminders_dropped": 0}
    with immediate(db):
        existing = {}
        for aid in {aid for aid, _ in by_pair}:
            existing.update({row["dedupe_key"]: row
                             for row in deliveries.with_prefix(db, f"reminder:{aid}:")})
        for key, spec in wanted.items():
            row = existing.get(key)
            if key in superseded:
                if row is None:
                    deliveries.enqueue(db, now=now, **spec)
                    row = deliveries.get(db, key)
                if row["status"] == "pending":
                    done["reminders_dropped"] += deliveries.cancel_ids(
                        db, [row["id"]], SUPERSEDED, status="dropped")
                continue
            if row is None:
                done["reminders_added"] += deliveries.enqueue(db, now=now, **spec)
            elif _changed(row, spec) and (
                    row["status"] == "pending" or row["status"] == "cancelled"
                    or (row["status"] in ("sent", "dropped")
                        and row["expires_at"] != to_db(spec["expires_at"]))):
                done["reminders_moved"] += deliveries.replan(
                    db, row["id"], due_at=spec["due_at"], expires_at=spec["expires_at"],
                    text=spec["text"], title=spec["title"], data=spec["data"], rearm=True)
        for row in deliveries.with_prefix(db, prefix, ("pending",)):
            if row["dedupe_key"] in wanted or row["kind"] != "reminder":
                continue
            if row["expires_at"] and from_db(row["expires_at"]) <= now:
                continue  # the dispatcher drops it, recording that it came too late
            done["reminders_cancelled"] += deliveries.cancel_ids(
                db, [row["id"]], _why_unwanted(db, row, rt.settings.reminder_offsets))
    return done


def _reminder(r: dict, start: datetime, due: datetime, offset: timedelta, tz) -> dict:
    when = fmt_local(start, tz)
    place = r["location"] or "待通知"
    notes = f"\n注意事项：{r['description']}\n" if r.get("description") else ""
    text = (f"活动提醒：你报名的「{r['title']}」将于 {when} 开始，地点：{place}。{notes}"
            "请准时参加；不能参加请回复“取消报名”，把名额留给其他人。")
    return {"dedupe_key": reminder_key(r["activity_id"], r["openid"], offset),
            "openid": r["openid"], "kind": "reminder", "title": "活动提醒", "text": text,
            "due_at": due, "expires_at": start,
            "data": {"activity_id": r["activity_id"], "start": to_db(start), "time": to_db(start),
                     "keyword1": r["title"][:20], "keyword2": when, "keyword3": place[:20]}}


def _changed(row: dict, spec: dict) -> bool:
    return (row["status"] != "pending" or row["due_at"] != to_db(spec["due_at"])
            or row["expires_at"] != to_db(spec["expires_at"]) or row["text"] != spec["text"])


def _why_unwanted(db, row: dict, offsets: tuple[timedelta, ...]) -> str:
    data = json.loads(row["data"]) if row["data"] else {}
    state = store.reminder_state(db, data.get("activity_id") or 0, row["openid"])
    reason = _reason(state, data)
    if reason:
        return reason
    if row["dedupe_key"].rsplit(":", 1)[-1] not in {str(int(o.total_seconds())) for o in offsets}:
        return "提醒时间设置（BOT_REMINDER_OFFSETS）已变更"
    return "报名时间晚于提醒时间，不再需要"


def _reason(state: dict, data: dict) -> str | None:
    """Why an activity reminder must not go out, or None if nothing forbids it."""
    if state["activity_status"] is None:
        return "活动已删除"
    if state["activity_status"] == "cancelled":
        return "活动已取消"
    if state["activity_status"] not in store.REMINDED_STATUSES:
        return "活动未发布"
    if state["signup_status"] != "confirmed":
        return "报名已取消" if state["signup_status"] in (None, "cancelled") else "未确认报名"
    if not state["subscribed"]:
        return "成员已取消关注公众号"
    if not state["reminders"]:
        return "成员已退订提醒"
    if state["start_at"] != data.get("start"):
        return "活动时间已变更"
    return None


# --- recurring calendar reminders --------------------------------------------------------

def plan_recurring(rt: "Runtime", items: list[calendar.CalendarItem] | None = None) -> dict:
    """This month's calendar reminders to members who chose the item (or all), due at 09:00 on
    the 1st (at once for a member who subscribes later in the month), expiring at month end."""
    db = rt.db()
    now = rt.clock.now()
    tz = rt.settings.tz
    here = now.astimezone(tz)
    year, month = here.year, here.month
    due = datetime(year, month, 1, RECURRING_HOUR, tzinfo=tz)
    expires = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    items = calendar.load_items() if items is None else items
    done = {"recurring_added": 0, "recurring_cancelled": 0}
    for item in items:
        if month not in item.reminder_months:
            continue
        audience = set(store.topic_audience(db, topic_keys(item)))
        prefix = f"recurring:{item.key}:{year:04d}-{month:02d}:"
        with immediate(db):
            existing = {row["openid"]: row for row in deliveries.with_prefix(db, prefix)}
            for openid in sorted(audience):
                row = existing.get(openid)
                spec = _recurring(item, year, month, openid, due, expires)
                if row is None:
                    done["recurring_added"] += deliveries.enqueue(db, now=now, **spec)
                elif row["status"] == "cancelled":  # chose it again
                    done["recurring_added"] += deliveries.replan(
                        db, row["id"], due_at=due, expires_at=expires, text=spec["text"],
                        title=spec["title"], data=spec["data"], rearm=True)
            gone = [row["id"] for openid, row in existing.items()
                    if openid not in audience and row["status"] == "pending"]
            done["recurring_cancelled"] += deliveries.cancel_ids(db, gone, "成员已退订该提醒")
    return done


def topic_keys(item: calendar.CalendarItem) -> list[str]:
    """The member_topics values that subscribe a member to this item."""
    return [store.ALL_TOPICS, item.key]


def _recurring(item: calendar.CalendarItem, year: int, month: int, openid: str,
               due: datetime, expires: datetime) -> dict:
    short = item.aliases[0] if item.aliases else item.name
    who = "、".join(item.departments) or "相关部门"
    if item.kind == "alliance":
        quarter = "一二三四"[(month - 1) // 3]
        title = "联盟项目提醒"
        text = (f"联盟项目提醒：{quarter}季度开始了，「{item.group}」的{item.project_type or '项目'}"
                f"「{item.name}」安排在{calendar.when_words(item)}，牵头：{who}。"
                f"回复“退订提醒 {short}”不再接收这项提醒。")
    else:
        title = "工会日历提醒"
        text = (f"工会日历提醒：本月（{month}月）有「{item.name}」"
                f"（全年安排：{calendar.when_words(item)}），负责：{who}。"
                f"回复“退订提醒 {short}”不再接收这项提醒。")
    return {"dedupe_key": recurring_key(item.key, year, month, openid), "openid": openid,
            "kind": "recurring", "title": title, "text": text, "due_at": due,
            "expires_at": expires,
            "data": {"item": item.key, "time": to_db(due), "keyword1": item.name[:20],
                     "keyword2": f"{year}年{month}月", "keyword3": who[:20]}}


# --- checked again just before sending -----------------------------------------------------

def verdict(rt: "Runtime", row: dict) -> tuple[str, str | None]:
    """'send', ('cancel', reason) or 'replan' for a claimed row, so a reminder never goes out
    for a cancelled activity or sign-up, or with an old time, even between two planning runs."""
    if row["kind"] not in ("reminder", "recurring"):
        return "send", None
    db = rt.db()
    data = json.loads(row["data"]) if row["data"] else {}
    if row["kind"] == "recurring":
        topics = [store.ALL_TOPICS, data.get("item") or ""]
        if not store.wants_topic(db, row["openid"], topics):
            return "cancel", "成员已退订该提醒"
        return "send", None
    if data.get("activity_id") is None:
        return "send", None
    reason = _reason(store.reminder_state(db, data["activity_id"], row["openid"]), data)
    if reason == "活动时间已变更":
        return "replan", None
    return ("cancel", reason) if reason else ("send", None)


def cancel_member(rt: "Runtime", openid: str, item_keys: list[str] | None = None) -> int:
    """Cancel a member's pending reminders now: all of them, or those of some calendar items."""
    db = rt.db()
    if item_keys is None:
        return deliveries.cancel_for_member(db, openid, ("reminder", "recurring"),
                                            "成员已退订提醒")
    return sum(deliveries.cancel_for_member(db, openid, ("recurring",), "成员已退订该提醒",
                                            key_prefix=f"recurring:{key}:")
               for key in item_keys)
