"""“这个季度有什么项目”: the alliance's project records (console-maintained), not the static
table, so a project organisers add is answered at once."""
from __future__ import annotations

import re
import unicodedata

from alliance import groups
from alliance import projects as service
from handlers.router import Context, Reply
from wechat.messages import Message

QUARTER_Q = re.compile(r"(这个|这|本|下个?|上个?|[一二三四1-4]|第[一二三四1-4]个?)季度.{0,8}项目")
RELATIVE = {"这个": 0, "这": 0, "本": 0, "下": 1, "下个": 1, "上": -1, "上个": -1}
NUMBERS = {"一": 1, "二": 2, "三": 3, "四": 4, "1": 1, "2": 2, "3": 3, "4": 4}


def this_quarter(msg: Message, ctx: Context) -> Reply | None:
    text = unicodedata.normalize("NFKC", msg.text or "").strip()
    m = QUARTER_Q.search(text)
    if not m or len(text) > 40:
        return None
    here = ctx.local_now
    year, quarter = here.year, groups.quarter_of_month(here.month)
    token = m.group(1).removeprefix("第").removesuffix("个")
    if token in NUMBERS:
        quarter = NUMBERS[token]
    else:
        step = RELATIVE.get(m.group(1), 0)
        quarter += step
        if quarter > 4:
            year, quarter = year + 1, 1
        elif quarter < 1:
            year, quarter = year - 1, 4
    group = next((g for g in groups.groups() if any(a in text for a in (g.name, *g.aliases))),
                 None)
    return Reply(service.quarter_answer(ctx.db, year, quarter, group),
                 topic=f"projects:{quarter}", answered=True)
