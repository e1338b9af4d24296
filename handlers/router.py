"""One router: handlers are plain functions tried in order; the first that answers wins.

A handler is `fn(msg, ctx) -> Reply | str | None`. None means "not mine, try the next".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Iterable

from sqlite_utils import Database

from handlers.commands import normalise
from storage.db import refused_write
from wechat.messages import Message

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
TEXT_TYPES = ("text", "voice")


@dataclass
class Reply:
    """What the member gets back. text=None: nothing (WeChat receives 'success')."""

    text: str | None
    handler: str = ""
    topic: str | None = None  # what was answered (entry id, command), for the console
    answered: bool | None = None  # knowledge questions only: answered or declined


@dataclass
class Context:
    """Everything a handler may use; built per message, never shared between messages."""

    rt: "Runtime"
    db: Database
    now: datetime
    member: dict | None = None
    depth: int = 0  # menu clicks re-dispatch as text; this stops loops

    @property
    def settings(self):
        return self.rt.settings

    @property
    def tz(self):
        return self.rt.settings.tz

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.tz)

    @property
    def is_organiser(self) -> bool:
        return bool(self.member) and self.member.get("role") == "organiser"


Handler = Callable[[Message, Context], "Reply | str | None"]
PostStep = Callable[[Message, Context, Reply], Reply]


@dataclass
class Route:
    fn: Handler
    name: str
    types: tuple[str, ...] = TEXT_TYPES
    events: tuple[str, ...] = ()


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)
    post: list[PostStep] = field(default_factory=list)  # run on the answer, outermost only
    error_text: str = "抱歉，刚才出了点问题，请稍后再试。"

    def add(self, fn: Handler, *, types: Iterable[str] = TEXT_TYPES,
            events: Iterable[str] = (), name: str | None = None) -> Handler:
        self.routes.append(Route(fn, name or fn.__module__.rsplit(".", 1)[-1] + "." + fn.__name__,
                                 tuple(types), tuple(events)))
        return fn

    def after(self, step: PostStep) -> PostStep:
        """A step that may amend any answer (e.g. offer a person after declines)."""
        self.post.append(step)
        return step

    def dispatch(self, msg: Message, ctx: Context) -> Reply:
        """The first answer, passed through the post steps (once, not per menu re-dispatch)."""
        reply = self._first(msg, ctx)
        if ctx.depth:
            return reply
        for step in self.post:
            try:
                reply = step(msg, ctx, reply)
            except Exception as exc:
                _failed(ctx, exc, f"post step {step.__name__}", msg)
        return reply

    def _first(self, msg: Message, ctx: Context) -> Reply:
        """First handler whose answer is not None; an exception is logged, the member is answered."""
        msg = normalise(msg)  # 报明 -> 报名, 签倒 123456 -> 签到 123456
        for route in self.routes:
            if msg.type not in route.types:
                continue
            if route.events and msg.event not in route.events:
                continue
            try:
                result = route.fn(msg, ctx)
            except Exception as exc:
                _failed(ctx, exc, f"handler {route.name}", msg)
                return Reply(self.error_text, handler=route.name + "!error")
            if result is None:
                continue
            if isinstance(result, str):
                result = Reply(result)
            if not result.handler:
                result.handler = route.name
            return result
        return Reply(None, handler="none")


def _failed(ctx: Context, exc: Exception, what: str, msg: Message) -> None:
    """A handler or post step raised: logged with its trace, its transaction rolled back. A write
    refused in a read-only run is re-raised: the pipeline runs the message again, claimed."""
    if refused_write(ctx.db, exc):
        raise exc
    log.exception("%s failed on %s", what, msg.dedupe_key)
    if ctx.db.conn.in_transaction:
        ctx.db.conn.execute("ROLLBACK")
