"""Long replies are cut into pages that fit WeChat's text limit; '更多' sends the next one."""
from __future__ import annotations

import re
from datetime import timedelta

from handlers import words
from handlers.router import Context, Reply
from storage import dialogs
from wechat.messages import Message
from wechat.replies import utf8_len

MORE_WORDS = {"更多", "more", "下一页", "继续"}
PAGES_KEEP = timedelta(hours=24)
_BREAKS = re.compile(r"(?<=[\n。；！？])")


def more(msg: Message, ctx: Context) -> Reply | None:
    if msg.text.lower() not in MORE_WORDS:
        return None
    page = dialogs.pop_page(ctx.db, msg.openid, ctx.now)
    if page is None:
        return Reply(words.MORE_NONE, topic="more")
    text, remaining = page
    return Reply(text + ("\n" + words.MORE_HINT if remaining else ""), topic="more")


def split(text: str, limit: int) -> list[str]:
    """Cut text into pages of at most `limit` UTF-8 bytes (room left for the hint),
    at line or sentence ends where possible."""
    budget = limit - utf8_len("\n" + words.MORE_HINT)
    pages: list[str] = []
    current = ""
    for piece in (p for p in _BREAKS.split(text) if p):
        while utf8_len(piece) > budget:  # one sentence longer than a page: cut by characters
            head = _take(piece, budget - utf8_len(current))
            if not head:
                pages.append(current.strip())
                current = ""
                continue
            pages.append((current + head).strip())
            current, piece = "", piece[len(head):]
        if utf8_len(current + piece) > budget:
            pages.append(current.strip())
            current = piece
        else:
            current += piece
    if current.strip():
        pages.append(current.strip())
    return [p for p in pages if p]


def paginate(text: str, openid: str, ctx: Context) -> str:
    """The first page to send now; the rest is kept for '更多'."""
    limit = ctx.settings.reply_max_bytes
    if utf8_len(text) <= limit:
        return text
    pages = split(text, limit)
    dialogs.put_pages(ctx.db, openid, pages[1:], ctx.now + PAGES_KEEP)
    return pages[0] + "\n" + words.MORE_HINT


def _take(text: str, budget: int) -> str:
    out, used = [], 0
    for ch in text:
        size = utf8_len(ch)
        if used + size > budget:
            break
        out.append(ch)
        used += size
    return "".join(out)
