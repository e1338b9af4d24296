"""Sign-up from the chat: 报名, number replies, 取消报名, 我的报名, 签到, 我的志愿时长.

Multi-step choices are dialog rows (storage/dialogs.py) with an expiry. `step` runs first:
it consumes only input that fits the live step (a number, a profile, 取消) and returns None
for anything else, so an unrelated question mid-dialog is still answered.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

from activities import service
from activities.service import (ActivityCancelled, ActivityError, ActivityNotFound,
                                AlreadySignedUp, DeadlinePassed)
from clock import fmt_local, from_db
from handlers import words
from handlers.profile import (FORMAT, ProfileFormatError, describe, has_profile,
                              looks_like_profile, parse_profile)
from handlers.router import Context, Reply
from storage import dialogs, members
from wechat.messages import Message

CHOOSE, CANCEL_CHOOSE, PROFILE = "signup.choose", "signup.cancel", "signup.profile"
STATES = (CHOOSE, CANCEL_CHOOSE, PROFILE)
LIST_WORDS = {"报名", "我要报名", "活动报名", "报名活动", "可报名活动", "可以报名的活动"}
CANCEL_WORDS = {"取消", "退出", "算了", "不报了", "cancel", "q"}
MINE_WORDS = {"我的报名", "我的活动", "报名记录", "我报了什么"}
CHECKOUT_WORDS = {"签退", "我要签退"}
CERTIFICATE_WORDS = {"我的志愿证明", "志愿证明", "志愿服务证明", "志愿服务记录证明", "开志愿证明",
                     "我要志愿证明", "开具志愿证明"}
HOURS_WORDS = {"我的志愿时长", "志愿时长", "我的时长", "我的志愿服务时长", "志愿服务时长"}
LIST_MAX = 10  # one WeChat message (2048 bytes) holds about ten entries
RECENT_RECORDS = 5
CN_DIGITS = {c: n for n, c in enumerate("一二三四五六七八九十", 1)}

SIGNUP_KEYWORD = re.compile(r"^(?:我要)?报名(?:\s*[:：]\s*|\s+)(.+)$", re.S)
SIGNUP_GLUED = re.compile(r"^(?:我要)?报名(.{2,})$", re.S)
CANCEL_SIGNUP = re.compile(r"^取消报名\s*[:：]?\s*(.*)$", re.S)
DETAILS = re.compile(r"^(?:活动详情|活动详细|详情)\s*[:：]?\s*(.*)$", re.S)
CHECK_IN = re.compile(r"^签到\s*[:：]?\s*([0-9A-Za-z]{3,12})$")
NUMBER = re.compile(r"^第?\s*(\d{1,3}|[一二三四五六七八九十])\s*(?:个|项|号|条)?\s*[.。]?$")

EMPTY_LIST = "目前没有可以报名的活动，有新活动会在这里发布。"
LIST_HINT = "回复数字报名，例如“1”；回复“取消”退出。\n看时间、地点、注意事项等详情回复“活动详情 编号”，例如“活动详情 1”。"
NO_MATCH = "没有找到和“{kw}”相关的可报名活动。回复“报名”查看全部可报名的活动。"
BAD_NUMBER = "没有第{n}项。请回复 1–{max} 之间的数字，或回复“取消”退出。"
ASK_PROFILE = "报名「{title}」前请先登记信息（只需一次）。\n请回复：" + FORMAT
NO_SIGNUPS = "你目前没有未结束的报名。回复“报名”看看可以报名的活动。"
CHECKIN_HELP = "请回复“签到 签到码”，签到码由活动现场的组织者公布，例如：签到 123456"
NO_DIALOG = "当前没有进行中的操作。如要取消某个活动的报名，请回复“取消报名”。"
RESTART = {CHOOSE: "请重新回复“报名”选择活动。", CANCEL_CHOOSE: "请重新回复“取消报名”。",
           PROFILE: "请重新回复“报名”。"}


def parse_number(text: str) -> int | None:
    """'2', '２', '第2个', '二' -> 2; anything else None."""
    m = NUMBER.match(_clean(text))
    if not m:
        return None
    token = m.group(1)
    return CN_DIGITS[token] if token in CN_DIGITS else int(token)


# --- the dialog step (registered first) ------------------------------------------------------

def step(msg: Message, ctx: Context) -> Reply | None:
    """A reply to a live sign-up dialog; None when the text does not fit the step."""
    text = _clean(msg.text)
    state = dialogs.get(ctx.db, msg.openid, ctx.now)
    if state is None:
        expired = dialogs.was_expired(ctx.db, msg.openid, ctx.now)
        if expired in STATES:
            dialogs.clear(ctx.db, msg.openid)
            if _fits(expired, text) or text in CANCEL_WORDS:
                return Reply(f"{words.DIALOG_EXPIRED}{RESTART[expired]}", topic="signup.expired")
        if text in CANCEL_WORDS and expired is None:
            return Reply(NO_DIALOG, topic="signup")
        return None
    name, data = state
    if name not in STATES:
        return None
    if text in CANCEL_WORDS:
        dialogs.clear(ctx.db, msg.openid)
        return Reply(words.DIALOG_CANCELLED, topic="signup.leave")
    if not _fits(name, text):
        return None
    if name == PROFILE:
        return _profile_answer(msg, ctx, text, data)
    n = parse_number(text)
    ids = data.get("ids") or []
    if not 1 <= n <= len(ids):
        return Reply(BAD_NUMBER.format(n=n, max=len(ids)), topic="signup.bad_number")
    if name == CHOOSE:
        return _attempt(msg, ctx, ids[n - 1])
    dialogs.clear(ctx.db, msg.openid)
    return _cancel_one(ctx, msg.openid, ids[n - 1])


def _fits(state: str, text: str) -> bool:
    if state == PROFILE:
        return looks_like_profile(text)
    return parse_number(text) is not None


def _profile_answer(msg: Message, ctx: Context, text: str, data: dict) -> Reply:
    try:
        name, unit, phone = parse_profile(text)
    except ProfileFormatError as exc:
        return Reply(f"{exc}。请回复：{FORMAT}；回复“取消”退出。", topic="signup.profile")
    members.set_profile(ctx.db, msg.openid, name, unit, phone, ctx.now)
    ctx.member = members.get(ctx.db, msg.openid)
    head = f"已登记：{describe(ctx.member)}。\n"
    reply = _attempt(msg, ctx, data["activity_id"])
    reply.text = head + reply.text
    return reply


# --- 报名 ---------------------------------------------------------------------------------

def signup(msg: Message, ctx: Context) -> Reply | None:
    """`报名` lists open activities; `报名 关键词` signs up for the one it names."""
    text = _clean(msg.text)
    if text in LIST_WORDS:
        return _list(msg, ctx)
    m = SIGNUP_KEYWORD.match(text)
    glued = SIGNUP_GLUED.match(text) if not m else None
    if not (m or glued):
        return None
    keyword = (m or glued).group(1).strip()
    n = parse_number(keyword)
    if n is not None:
        open_now = service.list_open(ctx.db, ctx.now)[:LIST_MAX]
        if not 1 <= n <= len(open_now):
            return Reply(BAD_NUMBER.format(n=n, max=len(open_now)) if open_now else EMPTY_LIST,
                         topic="signup.bad_number")
        return _attempt(msg, ctx, open_now[n - 1]["id"], open_now[n - 1])
    found = service.search(ctx.db, keyword, ctx.now)
    if not found:
        return Reply(NO_MATCH.format(kw=keyword), topic="signup.no_match") if m else None
    if len(found) == 1 or not service.is_signable(found[0], ctx.now):
        return _attempt(msg, ctx, found[0]["id"], found[0])
    return _offer(msg, ctx, found[:LIST_MAX], f"和“{keyword}”相关的活动有 {len(found)} 个：")


def _list(msg: Message, ctx: Context) -> Reply:
    activities = service.list_open(ctx.db, ctx.now)
    if not activities:
        return Reply(EMPTY_LIST, topic="signup.list")
    head = "可以报名的活动：" if len(activities) <= LIST_MAX else \
        f"可以报名的活动（最近 {LIST_MAX} 个）："
    return _offer(msg, ctx, activities[:LIST_MAX], head)


def _offer(msg: Message, ctx: Context, activities: list[dict], head: str) -> Reply:
    lines = [head]
    for n, a in enumerate(activities, 1):
        deadline = f" · {fmt_local(from_db(a['deadline_at']), ctx.tz)}截止" if a.get("deadline_at") else ""
        lines.append(f"{n}. {a['title']}\n   {service.when(a, ctx.tz)} · {service.where(a)} · "
                     f"{_places(a)}{deadline}")
    lines.append(LIST_HINT)
    _put(ctx, msg.openid, CHOOSE, {"ids": [a["id"] for a in activities]})
    return Reply("\n".join(lines), topic="signup.list")


def _places(activity: dict) -> str:
    left = service.places_left(activity)
    if left is None:
        return "不限名额"
    if left == 0:
        return f"已满（可候补，已有 {activity['waitlisted']} 人候补）" if activity["waitlisted"] \
            else "已满（可候补）"
    return f"剩余 {left} 个名额"


def _attempt(msg: Message, ctx: Context, activity_id: int, seen: dict | None = None) -> Reply:
    """Sign up for one chosen activity: check, ask for the profile once, then write.
    `seen`: the activity as this request just read it (the write reads it again)."""
    try:
        activity = seen or service.get_activity(ctx.db, activity_id)
        service.check_signable(activity, ctx.now)
        if not has_profile(ctx.member):
            _put(ctx, msg.openid, PROFILE, {"activity_id": activity_id})
            return Reply(ASK_PROFILE.format(title=activity["title"]), topic="signup.profile")
        result = service.sign_up(ctx.db, activity_id, msg.openid, ctx.now)
    except ActivityError as exc:
        dialogs.clear(ctx.db, msg.openid)
        return Reply(_error(exc, ctx), topic="signup.refused")
    dialogs.clear(ctx.db, msg.openid)
    a, tz = result.activity, ctx.tz
    notes = _hours_line(a) + _notes(a)
    if result.confirmed:
        text = (f"报名成功！\n活动：{a['title']}\n时间：{service.when(a, tz)}\n"
                f"地点：{service.where(a)}\n{notes}查看回复“我的报名”；不能参加请回复“取消报名”。")
        return Reply(text, topic=f"signup:{a['id']}")
    text = (f"名额已满，已为你登记候补：候补第{result.position}位。\n活动：{a['title']}\n"
            f"时间：{service.when(a, tz)}\n地点：{service.where(a)}\n{notes}"
            "有人取消时按顺序自动递补，递补成功会通知你。")
    return Reply(text, topic=f"signup:{a['id']}")


def _hours_line(activity: dict) -> str:
    if activity.get("checkout"):
        return "志愿时长：按签到到签退的实际时间计\n"
    if activity.get("hours"):
        return f"志愿时长：{service.fmt_hours(activity['hours'])} 小时（签到后记入）\n"
    return ""


def _notes(activity: dict) -> str:
    """The organiser's notes (where to gather, what to bring), as a line of the reply."""
    return f"注意事项：{activity['description']}\n" if activity.get("description") else ""


# --- 活动详情 -------------------------------------------------------------------------------

def details(msg: Message, ctx: Context) -> Reply | None:
    """`活动详情 N` (N as in the 报名 list) or `活动详情 关键词`: everything a member needs to
    decide and to turn up: time, place, deadline, places left, hours, the organiser's notes."""
    text = _clean(msg.text)
    m = DETAILS.match(text)
    if not m:
        return None
    arg = m.group(1).strip()
    if not text.startswith("活动") and parse_number(arg) is None:
        return None  # "详情 …" is only ours with a list number
    open_now = service.list_open(ctx.db, ctx.now)[:LIST_MAX]
    if not arg:
        if not open_now:
            return Reply(EMPTY_LIST, topic="signup.details")
        lines = ["回复“活动详情 编号”查看详情，编号如下："]
        lines += [f"{n}. {a['title']}" for n, a in enumerate(open_now, 1)]
        return Reply("\n".join(lines), topic="signup.details")
    n = parse_number(arg)
    if n is not None:
        if not 1 <= n <= len(open_now):
            return Reply(BAD_NUMBER.format(n=n, max=len(open_now)) if open_now else EMPTY_LIST,
                         topic="signup.bad_number")
        activity = open_now[n - 1]
    else:
        found = service.search(ctx.db, arg, ctx.now)
        if not found:
            return Reply(NO_MATCH.format(kw=arg), topic="signup.no_match")
        activity = found[0]
        n = next((i for i, a in enumerate(open_now, 1) if a["id"] == activity["id"]), None)
    return Reply(describe_activity(activity, ctx, n), topic=f"details:{activity['id']}")


def describe_activity(a: dict, ctx: Context, n: int | None = None) -> str:
    tz = ctx.tz
    deadline = service.deadline_of(a)
    if a.get("checkout"):
        hours = (f"按签到到签退的实际时间计（{service.fmt_hours(a.get('hours_step') or 0.5)} "
                 "小时向下取整）")
    else:
        hours = f"{service.fmt_hours(a['hours'])} 小时（签到后记入）" if a.get("hours") else "不记"
    lines = [f"「{a['title']}」",
             f"时间：{service.when(a, tz)}",
             f"地点：{service.where(a)}",
             f"报名截止：{fmt_local(deadline, tz) if deadline else '待定'}",
             f"名额：{_places(a)}",
             f"志愿时长：{hours}"]
    if a.get("grp"):
        lines.append(f"组织：{a['grp']}")
    if a.get("description"):
        lines.append(f"注意事项：{a['description']}")
    try:
        service.check_signable(a, ctx.now)
        lines.append(f"报名请回复“报名 {n}”。" if n else f"报名请回复“报名 {a['title']}”。")
    except ActivityError as exc:
        lines.append(_error(exc, ctx))
    return "\n".join(lines)


def _error(exc: ActivityError, ctx: Context) -> str:
    if isinstance(exc, AlreadySignedUp):
        state = ("已确认" if exc.signup.get("status") == "confirmed"
                 else f"候补第{exc.position}位")
        return f"你已报名「{exc.activity['title']}」（{state}），不用重复报名。查看回复“我的报名”。"
    if isinstance(exc, DeadlinePassed):
        a = exc.activity
        deadline = service.deadline_of(a)
        if a["status"] == "closed" or deadline is None:
            return f"报名已截止：「{a['title']}」已停止报名。"
        return f"报名已截止：「{a['title']}」的报名截止时间是 {fmt_local(deadline, ctx.tz)}。"
    if isinstance(exc, ActivityCancelled):
        return f"活动已取消：「{exc.activity['title']}」。回复“报名”看看其他活动。"
    if isinstance(exc, ActivityNotFound):
        return "这个活动已经不存在了。回复“报名”查看可以报名的活动。"
    text = str(exc)
    return text if text.endswith(("。", "！", "？")) else text + "。"


# --- 取消报名 -------------------------------------------------------------------------------

def cancel(msg: Message, ctx: Context) -> Reply | None:
    """`取消报名` (with a number from 我的报名, or a keyword, when there are several)."""
    m = CANCEL_SIGNUP.match(_clean(msg.text))
    if not m:
        return None
    arg = m.group(1).strip()
    items = service.member_signups(ctx.db, msg.openid, ctx.now)
    if not items:
        return Reply(NO_SIGNUPS, topic="signup.cancel")
    if arg:
        n = parse_number(arg)
        if n is not None:
            if not 1 <= n <= len(items):
                return Reply(BAD_NUMBER.format(n=n, max=len(items)), topic="signup.bad_number")
            return _cancel_one(ctx, msg.openid, items[n - 1]["signup_id"])
        scored = [(service.match_score(arg, i["title"]), i) for i in items]
        best = max(s for s, _ in scored)
        chosen = [i for s, i in scored if s >= service.MATCH_THRESHOLD
                  and s >= best - service.MATCH_SPREAD]
        if not chosen:
            return Reply(f"你的报名里没有和“{arg}”相关的活动。回复“我的报名”查看。",
                         topic="signup.cancel")
        items = chosen
    if len(items) == 1:
        return _cancel_one(ctx, msg.openid, items[0]["signup_id"])
    lines = ["你报名了这些活动，回复数字取消对应的报名；回复“取消”退出："]
    lines += [_line(n, i, ctx) for n, i in enumerate(items, 1)]
    _put(ctx, msg.openid, CANCEL_CHOOSE, {"ids": [i["signup_id"] for i in items]})
    return Reply("\n".join(lines), topic="signup.cancel")


def _cancel_one(ctx: Context, openid: str, signup_id: int) -> Reply:
    try:
        result = service.cancel_signup(ctx.db, signup_id, ctx.now, ctx.tz, openid=openid)
    except ActivityError as exc:
        return Reply(_error(exc, ctx), topic="signup.cancel")
    if result.promoted:
        ctx.rt.wake_dispatcher()
    return Reply(f"已取消「{result.activity['title']}」的报名。", topic=f"unsignup:{result.activity['id']}")


# --- 我的报名, 签到, 我的志愿时长 -------------------------------------------------------------

def mine(msg: Message, ctx: Context) -> Reply | None:
    """`我的报名`: sign-ups for activities not yet ended, numbered for 取消报名 N."""
    if _clean(msg.text) not in MINE_WORDS:
        return None
    items = service.member_signups(ctx.db, msg.openid, ctx.now)
    if not items:
        return Reply(NO_SIGNUPS, topic="signup.mine")
    lines = ["你的报名："] + [_line(n, i, ctx) for n, i in enumerate(items, 1)]
    lines.append("取消某项请回复“取消报名 编号”；到场后回复“签到 签到码”。")
    return Reply("\n".join(lines), topic="signup.mine")


def _line(n: int, item: dict, ctx: Context) -> str:
    if item["status"] == "cancelled":
        state = "活动已取消"
    elif item["checked_in_at"]:
        state = "已签到"
    elif item["signup_status"] == "waitlisted":
        state = f"候补第{item['position']}位"
    else:
        state = "已确认"
    return (f"{n}. {item['title']}（{state}）\n   {service.when(item, ctx.tz)} · "
            f"{service.where(item)}")


def check_in(msg: Message, ctx: Context) -> Reply | None:
    """`签到 <code>` at the event: records the check-in and credits the activity's hours."""
    text = _clean(msg.text)
    if text == "签到":
        return Reply(CHECKIN_HELP, topic="checkin")
    m = CHECK_IN.match(text)
    if not m:
        return None
    return check_in_reply(msg, ctx, m.group(1))


def attempt_rules(ctx: Context) -> service.AttemptRules:
    s = ctx.settings
    return service.AttemptRules(s.checkin_max_wrong,
                                timedelta(minutes=s.checkin_wrong_window_minutes))


def check_in_reply(msg: Message, ctx: Context, code: str, *, scanned: bool = False) -> Reply:
    """Check in with a typed or scanned code and say the outcome (shared with QR scans)."""
    try:
        result = service.check_in(ctx.db, msg.openid, code, ctx.now, ctx.tz, attempt_rules(ctx),
                                  scanned=scanned)
    except service.NotSignedUp as exc:
        a = exc.activity
        hint = (f"先回复“报名 {a['title']}”报名，报名确认后再扫码签到。" if service.is_signable(a, ctx.now)
                else "这个活动已经停止报名，如已到场请联系现场组织者。")
        return Reply(f"{exc}{hint}", topic="checkin")
    except ActivityError as exc:
        return Reply(_error(exc, ctx), topic="checkin")
    a, s = result.activity, result.signup
    if result.already:
        return Reply(f"你已经签到过了：「{a['title']}」，签到时间 "
                     f"{fmt_local(from_db(s['checked_in_at']), ctx.tz)}。", topic="checkin")
    if a.get("checkout"):
        return Reply(f"签到成功：「{a['title']}」。\n本活动需要签退：离开时回复“签退”，"
                     "按实际参加的时间记志愿时长。", topic=f"checkin:{a['id']}")
    credit = f"，记志愿时长 {service.fmt_hours(s['hours'])} 小时" if s["hours"] else ""
    return Reply(f"签到成功：「{a['title']}」{credit}。\n查看累计时长回复“我的志愿时长”。",
                 topic=f"checkin:{a['id']}")


def check_out(msg: Message, ctx: Context) -> Reply | None:
    """`签退`: ends the attendance at an activity with 签退 on; hours from the real time."""
    if _clean(msg.text) not in CHECKOUT_WORDS:
        return None
    try:
        result = service.check_out(ctx.db, msg.openid, ctx.now)
    except ActivityError as exc:
        return Reply(_error(exc, ctx), topic="checkout")
    a, s = result.activity, result.signup
    if result.already:
        return Reply(f"你已经签退过了：「{a['title']}」，签退时间 "
                     f"{fmt_local(from_db(s['checked_out_at']), ctx.tz)}，"
                     f"记志愿时长 {service.fmt_hours(s['hours'])} 小时。", topic="checkout")
    return Reply(f"签退成功：「{a['title']}」，按实际参加时间记志愿时长 "
                 f"{service.fmt_hours(s['hours'])} 小时。\n查看累计时长回复“我的志愿时长”。",
                 topic=f"checkout:{a['id']}")


def hours(msg: Message, ctx: Context) -> Reply | None:
    """`我的志愿时长`: the total credited, with the latest records."""
    if _clean(msg.text) not in HOURS_WORDS:
        return None
    record = service.volunteer_record(ctx.db, msg.openid)
    if not record["records"]:
        return Reply("你还没有志愿时长记录。参加活动时在现场回复“签到 签到码”，签到后自动记入。",
                     topic="hours")
    lines = [f"你的累计志愿时长：{service.fmt_hours(record['total_hours'])} 小时"
             f"（{record['count']} 次活动）。"]
    recent = record["records"][-RECENT_RECORDS:]
    lines.append("最近记录：" if len(record["records"]) > RECENT_RECORDS else "记录：")
    for r in reversed(recent):
        start = from_db(r["start_at"])
        day = f"{start.astimezone(ctx.tz):%Y-%m-%d}" if start else "—"
        org = f"（{r['organiser']}）" if r["organiser"] else ""
        lines.append(f"· {day} {r['title']}{org} {service.fmt_hours(r['credited_hours'])} 小时")
    lines.append("如有出入请联系活动组织者更正。")
    return Reply("\n".join(lines), topic="hours")


def certificate(msg: Message, ctx: Context) -> Reply | None:
    """`我的志愿证明`: how to get the PDF 志愿服务记录证明 (organisers issue it: 谁记录谁证明)."""
    if _clean(msg.text) not in CERTIFICATE_WORDS:
        return None
    total, count = service.hours_total(ctx.db, msg.openid)
    head = (f"你目前累计志愿时长 {service.fmt_hours(total)} 小时（{count} 次活动），"
            "明细回复“我的志愿时长”。\n" if count else
            "你还没有志愿时长记录，参加活动并签到后才能出具证明。\n")
    return Reply(head + "《志愿服务记录证明》（PDF，带证明编号）由记录时长的组织方出具：请联系活动组织者，"
                 "在管理后台“活动报名”的报名名单里点你名字旁的“志愿证明”，"
                 "或在服务器上运行 python bot.py volunteer-record 为你出具。"
                 + ("" if has_profile(ctx.member) else
                    "\n证明上要写姓名和单位，请先回复：绑定 姓名 单位。"),
                 topic="certificate")


def _put(ctx: Context, openid: str, state: str, data: dict) -> None:
    expires = ctx.now + timedelta(minutes=ctx.settings.dialog_timeout_minutes)
    dialogs.put(ctx.db, openid, state, data, expires)


def _clean(text: str) -> str:
    """Full-width forms folded; a trailing full stop (voice recognition adds one) dropped."""
    return unicodedata.normalize("NFKC", text or "").strip().rstrip("。.!！").strip()
