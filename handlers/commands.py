"""Commands as members really type them: 报明, 取消保名, 签倒, 报名🙏 are the commands they resemble.

A message whose leading words sound like a command (same pinyin: 报明/报名, 保名/报名, 倒/到) is
rewritten to that command before routing; what follows (a number, a code) is kept; a message
that goes on in words is a sentence, not a command, and is left alone. Emoji and punctuation around a command are dropped.
"""
from __future__ import annotations

import functools
import re
from dataclasses import replace

from knowledge.spelling import readings
from wechat.messages import Message

COMMANDS = ("报名", "取消报名", "我的报名", "签到", "签退", "我的志愿时长", "志愿时长", "我的信息", "绑定",
            "订阅提醒", "退订提醒", "我的提醒", "帮助", "更多", "活动详情", "我的志愿证明", "取消")
_HEAD = re.compile(r"^([\u3400-\u9fff]{2,8})(.*)$", re.S)
TEXT_CACHE = 4096  # distinct message texts whose command form is kept
_DECOR = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F\u200d!！。.~～?？,，、]+")


def _sounds(word: str) -> list[set[str]]:
    return [set(readings(ch)) for ch in word]


_COMMAND_SOUNDS = [(c, _sounds(c)) for c in COMMANDS]


def _resembles(head: str, command: str, sounds: list[set[str]]) -> bool:
    if len(head) != len(command) or head == command:
        return False
    differ = [i for i, (a, b) in enumerate(zip(head, command)) if a != b]
    return all(set(readings(head[i])) & sounds[i] for i in differ)  # 报明, 签倒, 取消保名


@functools.lru_cache(maxsize=TEXT_CACHE)
def canonical(text: str) -> str:
    """The command this text resembles, with its argument; the text itself otherwise.
    Cached: members send the same few texts, and comparing readings costs."""
    stripped = _DECOR.sub("", text).strip()
    if stripped in COMMANDS:
        return stripped
    match = _HEAD.match(stripped)
    if not match:
        return text
    head, rest = match.groups()
    if rest and not re.match(r"^\s*[\dA-Za-z：:]", rest):
        return text  # more words follow: a sentence, not a command
    for command, sounds in _COMMAND_SOUNDS:
        if _resembles(head, command, sounds):
            return command + rest
    return text


def normalise(msg: Message) -> Message:
    if msg.type not in ("text", "voice") or not msg.text:
        return msg
    fixed = canonical(msg.text)
    return msg if fixed == msg.text else replace(msg, content=fixed)
