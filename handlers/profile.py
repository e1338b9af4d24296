"""The member's profile (姓名、单位、可选手机): `绑定 …` sets it, `我的信息` shows it.

Sign-up needs a name and unit for the volunteer record; handlers/signup.py asks for them
once, in one message, and reuses `parse_profile` for the answer.
"""
from __future__ import annotations

import re
import unicodedata

from handlers.router import Context, Reply
from privacy import mask_phone
from storage import members
from wechat.messages import Message

BIND = re.compile(r"^(?:绑定|登记|修改信息|更新信息)(?:\s*[:：]\s*|\s+)(.+)$", re.S)
BIND_BARE = {"绑定", "登记", "修改信息", "更新信息"}
INFO_WORDS = {"我的信息", "我的资料", "个人信息", "查看信息"}
FORMAT = "姓名 单位（可再加手机号），例如：张三 虹口区城管执法局"
BIND_HELP = "格式：绑定 姓名 单位 [手机号]，例如：绑定 张三 虹口区城管执法局 13812345678"
NO_PROFILE = "你还没有登记信息。回复：绑定 姓名 单位 [手机号]，例如：绑定 张三 虹口区城管执法局"
_LABELS = re.compile(r"(姓名|名字|单位|工作单位|手机号码|手机号|手机|电话)\s*[:：]")
_SPLIT = re.compile(r"[\s,，、;；/|]+")
_PHONE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$|^0\d{2,3}-?\d{7,8}$")
_DIGITS = re.compile(r"^[\d+\-]{3,}$")
_QUESTION = re.compile(r"[?？吗呢啥]|什么|怎么|几月|哪里|哪个|为什么|多少|是否|可以|能否")
_COMMANDS = ("报名", "我要报名", "取消", "签到", "订阅", "退订", "通知", "群发", "我的", "查看", "查询",
             "更多", "帮助", "确认")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_NAME = re.compile(f"^[{_HAN}]{{2,6}}$")
_DOTS = "·・•‧∙"  # the middle dot as typed on phones and PCs (· ・ • …), stored as ·
_DOTTED_NAME = re.compile(f"^[{_HAN}]+(?:·[{_HAN}]+)+$")
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_LATIN_NAME = re.compile(f"^[{_LATIN}][{_LATIN} .'-]{{0,38}}[{_LATIN}.]$")
_LATIN_WORD = re.compile(f"^[{_LATIN}][{_LATIN}.'-]*$")
MAX_DOTTED = 20
NAME_RULE = ("姓名应为 2–6 个汉字，或带间隔号的名字（不超过 20 个字，如 阿依古丽·买买提），"
             "或英文字母（如 Anna Smith），不能有数字和符号")


class ProfileFormatError(ValueError):
    """The text is not 'name unit [phone]'; str(exc) says what is missing, in Chinese."""


def looks_like_profile(text: str) -> bool:
    """Could this be an answer to '请回复：姓名 单位'? Two or more parts, not a question;
    a single word ('帮助', '体检') or a command ('订阅提醒 体检') is left to the other handlers."""
    text = _clean(text)
    if not text or _QUESTION.search(text) or len(text) > 80 or text.startswith(_COMMANDS):
        return False
    return len([t for t in _SPLIT.split(_LABELS.sub(" ", text)) if t]) >= 2


def parse_profile(text: str) -> tuple[str, str, str | None]:
    """'张三 虹口区城管执法局 13812345678' -> (name, unit, phone or None).

    Also reads '姓名：张三，单位：…' and a leading '绑定'. Raises ProfileFormatError."""
    text = _clean(text)
    m = BIND.match(text)
    if m:
        text = m.group(1)
    tokens = [t for t in _SPLIT.split(_LABELS.sub(" ", text)) if t]
    phone = None
    if tokens and _DIGITS.match(tokens[-1]):
        phone = tokens.pop().replace("-", "") if _PHONE.match(tokens[-1]) else None
        if phone is None:
            raise ProfileFormatError("手机号格式不对（11 位手机号，或带区号的座机）")
    if len(tokens) < 2:
        raise ProfileFormatError("需要姓名和单位两项，中间用空格隔开")
    taken = 1
    while taken < len(tokens) - 1 and _LATIN_WORD.match(tokens[0]) \
            and _LATIN_WORD.match(tokens[taken]):
        taken += 1  # "Anna Maria Smith 虹口区…": a Latin name may have spaces
    name, unit = normalize_name(" ".join(tokens[:taken])), " ".join(tokens[taken:])
    if not is_real_name(name):
        raise ProfileFormatError(NAME_RULE)
    if len(unit) < 2 or len(unit) > 50 or any(ch.isdigit() for ch in unit[:1]):
        raise ProfileFormatError("单位名称应为 2–50 个字")
    if _QUESTION.search(name + unit):
        raise ProfileFormatError("看起来不像姓名和单位")
    return name, unit, phone


def normalize_name(name: str) -> str:
    """Every middle-dot variant becomes ·, and spaces around it go."""
    for dot in _DOTS:
        name = name.replace(dot, "·")
    return re.sub(r"\s*·\s*", "·", name.strip())


def is_real_name(name: str) -> bool:
    """Han names of 2–6 characters, dotted names up to 20, names in Latin letters."""
    if _HAN_NAME.match(name):
        return True
    if _DOTTED_NAME.match(name):
        return len(name) <= MAX_DOTTED
    return bool(_LATIN_NAME.match(name))


def has_profile(member: dict | None) -> bool:
    return bool(member and member.get("name") and member.get("unit"))


def describe(member: dict) -> str:
    phone = f"，手机 {mask_phone(member['phone'])}" if member.get("phone") else ""
    return f"{member['name']}，{member['unit']}{phone}"


def bind(msg: Message, ctx: Context) -> Reply | None:
    """`绑定 姓名 单位 [手机]`: set or change the profile at any time."""
    text = _clean(msg.text)
    if text in BIND_BARE:
        return Reply(BIND_HELP, topic="profile")
    if not BIND.match(text):
        return None
    try:
        name, unit, phone = parse_profile(text)
    except ProfileFormatError as exc:
        return Reply(f"{exc}。\n{BIND_HELP}", topic="profile")
    members.set_profile(ctx.db, msg.openid, name, unit, phone, ctx.now)
    member = members.get(ctx.db, msg.openid)
    return Reply(f"已登记：{describe(member)}。\n查看回复“我的信息”，修改再发一次“绑定 姓名 单位”。",
                 topic="profile")


def my_info(msg: Message, ctx: Context) -> Reply | None:
    """`我的信息`: what the bot has on record (the phone masked)."""
    if _clean(msg.text) not in INFO_WORDS:
        return None
    member = ctx.member
    if not has_profile(member):
        return Reply(NO_PROFILE, topic="profile")
    lines = [f"姓名：{member['name']}", f"单位：{member['unit']}"]
    if member.get("phone"):
        lines.append(f"手机：{mask_phone(member['phone'])}")
    lines.append("修改请回复：绑定 姓名 单位 [手机号]")
    return Reply("\n".join(lines), topic="profile")


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip()
