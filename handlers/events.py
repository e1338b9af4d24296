"""WeChat's own notices about the account: no member did anything, so nothing is answered and
no member row is made (the pipeline only touches members for `Message.is_member_action`)."""
from __future__ import annotations

import logging
import re

from handlers.router import Context, Reply
from storage import deliveries
from wechat.messages import Message

log = logging.getLogger(__name__)
MSGID = re.compile(r"^\d{1,24}$")
MAX_STATUS = 64


def template_report(msg: Message, ctx: Context) -> Reply:
    """TEMPLATESENDJOBFINISH: WeChat's delivery report for a template message, kept on the
    outbox row sent with that msgid ('success', 'failed:user block', 'failed: system failed')."""
    raw = msg.raw
    msgid = raw.get("MsgID") or raw.get("MsgId")
    status = raw.get("Status")
    if isinstance(msgid, str) and MSGID.match(msgid.strip()) and isinstance(status, str):
        found = deliveries.record_report(ctx.db, msgid.strip(), msg.openid,
                                         status.strip()[:MAX_STATUS], ctx.now)
        if not found:
            log.info("delivery report for unknown msgid %s", msgid.strip())
    return Reply(None, topic="template_report")
