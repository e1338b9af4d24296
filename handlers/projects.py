"""“这个季度有什么项目”: the alliance's project records (console-maintained), not the static
table, so a project organisers add is answered at once."""
from __future__ import annotations

import re
import unicodedata

from alliance import groups
from alliance import projects as service
from handlers.router import Context, Reply
from knowledge import engine_for
from knowledge.schedule import parse_period
from wechat.messages import Message

QUARTER_Q = re.compile(r"(这个|这|本|下个?|上个?|[一二三四1-4]|第[一二三四1-4]个?)季度.{0,8}项目")


def this_quarter(msg: Message, ctx: Context) -> Reply | None:
    text = unicodedata.normalize("NFKC", msg.text or "").strip()
    if not QUARTER_Q.search(text) or len(text) > 40:
        return None
    period = parse_period(engine_for(ctx.rt).normalize(text), ctx.local_now)
    if period is None or period.kind != "quarter":
        return None
    group = next((g for g in groups.groups() if any(a in text for a in (g.name, *g.aliases))),
                 None)
    return Reply(service.quarter_answer(ctx.db, period.year, period.number, group),
                 topic=f"projects:{period.number}", answered=True)
