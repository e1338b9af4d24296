"""The router's one list of handlers, in the order they are tried."""
from __future__ import annotations

from handlers import basic, chitchat, knowledge, more
from handlers import profile, signup
from handlers import broadcast, events, handoff, needs, projects, reminders
from handlers.router import Context, Reply, Router


def build_router() -> Router:
    r = Router()
    r.add(basic.subscribe, types=["event"],
          events=["subscribe", "subscribe_scan", "subscribe_scan_product"])
    r.add(basic.unsubscribe, types=["event"], events=["unsubscribe"])
    r.add(basic.click, types=["event"], events=["click"])
    r.add(basic.view, types=["event"], events=["view"])
    r.add(basic.scan, types=["event"], events=["scan"])
    r.add(events.template_report, types=["event"], events=["templatesendjobfinish"])
    r.add(basic.image, types=["image"])
    r.add(basic.location, types=["location"])
    r.add(basic.link, types=["link"])
    r.add(basic.video, types=["video", "shortvideo"])
    r.add(basic.voice_unheard, types=["voice"])
    r.add(basic.empty)
    r.add(handoff.request)  # 人工 / 结束人工 work whatever dialog is live
    r.add(signup.step)  # a reply to a live sign-up dialog (number, profile, 取消) comes first
    r.add(needs.step)  # the text after a bare 提需求
    r.add(knowledge.choose_suggestion)  # a number after "你是不是想问"
    r.add(profile.bind)
    r.add(profile.my_info)
    r.add(signup.signup)
    r.add(signup.details)
    r.add(signup.cancel)
    r.add(signup.mine)
    r.add(signup.check_in)
    r.add(signup.check_out)
    r.add(signup.hours)
    r.add(signup.certificate)
    r.add(broadcast.confirm)  # 确认/取消 while an organiser's 通知 waits
    r.add(broadcast.notice)
    r.add(needs.raise_need)
    r.add(needs.mine)
    r.add(reminders.subscription)
    r.add(reminders.mine)
    r.add(more.more)
    r.add(basic.help_)
    r.add(chitchat.reply)  # 谢谢, 收到, 👍, a bare number with no list pending
    r.add(projects.this_quarter)  # "这个季度有什么项目": the project records
    r.add(knowledge.schedule)  # "这个月有什么活动": relative to today
    r.add(knowledge.ask)  # everything else: the knowledge base, or "没有找到"
    r.add(basic.fallback)
    r.after(handoff.after)  # open conversation: declines go to a person; 2 declines offer one
    return r


__all__ = ["build_router", "Context", "Reply", "Router"]
