"""概览: the numbers an organiser checks first (members, questions, activities, deliveries)."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, render_template

from activities import service as activities
from console.auth import db, login_required, now, runtime, scope
from clock import from_db
from knowledge import engine_for
from scheduler import handoff
from storage import deliveries, members, messages
from console.inbox import waiting as inbox_waiting
from storage import knowledge as kb_store

bp = Blueprint("dashboard", __name__)
DAYS = 30
UPCOMING = 6
NEWEST_UNANSWERED = 6
TOPIC_WORDS = {"schedule": "日程查询（这个月有什么活动）", "kb_suggest": "选择“你是不是想问”"}


def topic_title(engine, topic: str) -> str:
    """An answered topic as organisers read it: the entry's question, else a short name."""
    entry = engine.entry(topic)
    if entry is not None:
        return entry.question
    return TOPIC_WORDS.get(topic.split(":", 1)[0], topic)


def top_questions(engine, counts: list[tuple[str, int]], limit: int = 10) -> list[tuple[str, int]]:
    """问得最多, one line per question as organisers read it: topics that read the same
    (schedule:month, schedule:quarter …) are added up."""
    merged: dict[str, int] = {}
    for topic, n in counts:
        title = topic_title(engine, topic)
        merged[title] = merged.get(title, 0) + n
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _day_start(moment: datetime, tz) -> datetime:
    here = moment.astimezone(tz)
    return here.replace(hour=0, minute=0, second=0, microsecond=0)


def chart(counts: dict[str, int], first_day: datetime, days: int = DAYS) -> dict:
    """One bar per local day (empty days included), heights in % of the busiest day."""
    peak = max(counts.values(), default=0)
    bars = []
    for i in range(days):
        day = first_day + timedelta(days=i)
        value = counts.get(day.strftime("%Y-%m-%d"), 0)
        bars.append({"day": day.strftime("%Y-%m-%d"), "value": value,
                     "pct": round(100 * value / peak, 1) if peak else 0,
                     "label": f"{day.month}/{day.day}" if i % 5 == 0 or i == days - 1 else ""})
    return {"bars": bars, "peak": peak, "total": sum(counts.values())}


def member_stats(database) -> dict:
    """Member counts, within the account's scope (test members left out)."""
    if not scope().limited:
        return members.stats(database, skip_prefixes=members.TEST_PREFIXES)
    rows = scope().members(members.units(database, skip_prefixes=members.TEST_PREFIXES))
    return {"total": len(rows), "subscribed": sum(r["subscribed"] or 0 for r in rows),
            "with_profile": sum(r["named"] for r in rows)}


def upcoming(database, moment: datetime) -> list[dict]:
    """Published activities not started yet (in scope), soonest first, with places left."""
    from console.activities import in_scope

    rows = [a for a in activities.list_activities(database, ("open", "closed"))
            if (activities.start_of(a) or moment) > moment and in_scope(a)]
    return [{**a, "left": activities.places_left(a)} for a in rows[:UPCOMING]]


@bp.get("/")
@login_required
def index():
    rt, database, moment = runtime(), db(), now()
    tz = rt.settings.tz
    first_day = _day_start(moment, tz) - timedelta(days=DAYS - 1)
    offset = moment.astimezone(tz).utcoffset().total_seconds() / 3600
    counts = dict(messages.per_day(database, first_day, offset))
    answered, asked = messages.answer_rate(database, first_day)
    progress = deliveries.progress(database)
    handoff.expire(rt)
    waiting, oldest = inbox_waiting(database)
    return render_template(
        "console/dashboard.html",
        stats=member_stats(database),
        handoff_waiting=waiting,
        handoff_oldest=handoff.waited(from_db(oldest), moment) if oldest else "",
        chart=chart(counts, first_day),
        answered=answered, asked=asked,
        rate=round(100 * answered / asked) if asked else None,
        top=top_questions(engine_for(rt), messages.top_topics(database, first_day, 30)),
        unanswered=[] if scope().limited else
        kb_store.unanswered(database, "open", limit=NEWEST_UNANSWERED),
        pending_count=progress.get("pending", 0) + progress.get("sending", 0),
        failed_count=sum(progress.get(s, 0) for s in ("failed", "unreachable", "dropped")),
        sent_count=progress.get("sent", 0),
        failures=deliveries.failures(database, limit=5),
        upcoming=upcoming(database, moment),
    )
