"""Events and non-text messages: subscribe, unsubscribe, menu clicks, scans, media, help."""
from __future__ import annotations

from dataclasses import replace

from handlers import words
from handlers.router import Context, Reply
from storage import members
from wechat.messages import Message

MAX_CLICK_DEPTH = 1


def subscribe(msg: Message, ctx: Context) -> Reply:
    """A follow, whatever its EventKey; one through a check-in QR code also checks in."""
    from activities.qr import code_from_scene
    from handlers.signup import check_in_reply

    members.touch(ctx.db, msg.openid, ctx.now, subscribed=True)
    code = code_from_scene(msg.event_key)
    if code is not None:
        outcome = check_in_reply(msg, ctx, code, scanned=True)
        return Reply(f"{words.WELCOME}\n\n{outcome.text}", topic=outcome.topic)
    return Reply(words.WELCOME, topic="subscribe")


def unsubscribe(msg: Message, ctx: Context) -> Reply:
    """Mark the member unsubscribed; WeChat shows no reply to this event, so send none."""
    members.touch(ctx.db, msg.openid, ctx.now, subscribed=False)
    return Reply(None, topic="unsubscribe")


def scan(msg: Message, ctx: Context) -> Reply:
    """A follower scanned a parametric QR code: a check-in code checks in, by 签到's rules."""
    from activities.qr import code_from_scene
    from handlers.signup import check_in_reply

    code = code_from_scene(msg.event_key)
    if code is not None:
        return check_in_reply(msg, ctx, code, scanned=True)
    return Reply(words.SCAN, topic="scan")


def click(msg: Message, ctx: Context) -> Reply | None:
    """A menu key is the same as typing its words: re-dispatch as text through the router."""
    command = ctx.rt.menu_keys.get(msg.event_key or "")
    if command is None or ctx.depth >= MAX_CLICK_DEPTH:
        return Reply(words.CAPABILITIES, topic="menu")
    as_text = replace(msg, type="text", content=command, event=None)
    reply = ctx.rt.router.dispatch(as_text, replace(ctx, depth=ctx.depth + 1))
    reply.handler = f"click:{msg.event_key}>{reply.handler}"
    return reply


def view(msg: Message, ctx: Context) -> Reply:
    return Reply(None, topic="view")


def image(msg: Message, ctx: Context) -> Reply:
    return Reply(words.IMAGE)


def location(msg: Message, ctx: Context) -> Reply:
    return Reply(words.LOCATION)


def link(msg: Message, ctx: Context) -> Reply:
    return Reply(words.LINK)


def video(msg: Message, ctx: Context) -> Reply:
    return Reply(words.VIDEO)


def voice_unheard(msg: Message, ctx: Context) -> Reply | None:
    """A voice message without WeChat's Recognition text."""
    return Reply(words.VOICE_UNHEARD) if not msg.text else None


def help_(msg: Message, ctx: Context) -> Reply | None:
    return Reply(words.CAPABILITIES, topic="help") if msg.text.lower() in words.HELP_WORDS else None


def empty(msg: Message, ctx: Context) -> Reply | None:
    return Reply(words.CAPABILITIES, topic="help") if not msg.text else None


def fallback(msg: Message, ctx: Context) -> Reply:
    """Last in line: say what the bot can do."""
    return Reply(words.CAPABILITIES, topic="fallback", answered=False)
