"""The router's one list of handlers, in the order they are tried."""
from __future__ import annotations

from handlers import basic, more
from handlers.router import Context, Reply, Router


def build_router() -> Router:
    r = Router()
    r.add(basic.subscribe, types=["event"], events=["subscribe", "subscribe_scan"])
    r.add(basic.unsubscribe, types=["event"], events=["unsubscribe"])
    r.add(basic.click, types=["event"], events=["click"])
    r.add(basic.view, types=["event"], events=["view"])
    r.add(basic.scan, types=["event"], events=["scan"])
    r.add(basic.image, types=["image"])
    r.add(basic.location, types=["location"])
    r.add(basic.link, types=["link"])
    r.add(basic.video, types=["video", "shortvideo"])
    r.add(basic.voice_unheard, types=["voice"])
    r.add(basic.empty)
    r.add(more.more)
    r.add(basic.help_)
    r.add(basic.fallback)
    return r


__all__ = ["build_router", "Context", "Reply", "Router"]
