"""Small talk: thanks, greetings, acknowledgements and goodbyes get a short natural reply.

They are not questions, so they are never declined with "没有找到" and never reach the
organisers' unanswered list. A bare number with no list pending says what numbers are for.
"""
from __future__ import annotations

import functools
import re

from handlers.router import Context, Reply
from knowledge.normalize import fold, strip_noise
from wechat.messages import Message

REPLIES = [
    (("谢谢", "多谢", "谢了", "感谢", "谢谢你", "谢谢啦", "辛苦了", "辛苦", "thanks", "thankyou", "thx", "3q",
      "谢谢小助手", "太感谢了", "感谢感谢"), "不客气！还有问题随时问我。"),
    (("收到", "好的", "好", "好滴", "好哒", "嗯", "嗯嗯", "ok", "okay", "行", "可以", "明白", "明白了", "知道了",
      "了解", "懂了", "get", "👌", "👍", "好的谢谢", "收到谢谢", "好的收到"), "好的。还有问题随时问我。"),
    (("哈哈", "哈哈哈", "哈哈哈哈", "呵呵", "嘿嘿", "😄", "😂", "🤣", "😊"), "😊 还有什么想了解的，直接问我就行。"),
    (("在吗", "在不在", "有人吗", "小助手在吗", "在么"), "在的！想问什么直接打字，比如“体检几月”“报名”。"),
    (("再见", "拜拜", "bye", "byebye", "晚安", "下次见", "88"), "再见，有需要随时找我！"),
    (("早", "早上好", "早安", "上午好", "中午好", "下午好", "晚上好"), "你好！想了解什么直接问我，回复“帮助”看看我能做什么。"),
]
_TABLE = {word: reply for words, reply in REPLIES for word in words}
_NUMBER = re.compile(r"^\s*\d{1,3}\s*$")
NUMBER_HINT = ("数字用来选择列表里的选项：先问一个问题或回复“报名”看到编号列表，再回复数字。"
               "想问什么直接打字就行。")
EMOJI_REPLY = "😊 有问题直接打字问我就行。"
TEXT_CACHE = 4096  # distinct message texts whose key is kept


@functools.lru_cache(maxsize=TEXT_CACHE)
def key(text: str) -> str:
    """The message as compared with the table: folded, without punctuation or trailing 啊呀.
    Cached: members send the same few texts, and folding (traditional -> simplified) costs."""
    folded = fold(text).strip()
    plain = strip_noise(folded).rstrip("啊呀啦哈哦噢呢吧~")
    return plain or folded.replace(" ", "")


def reply(msg: Message, ctx: Context) -> Reply | None:
    if not msg.text:
        return None
    text = msg.text.strip()
    k = key(text)
    if k in _TABLE:
        return Reply(_TABLE[k], topic="chitchat")
    if text in _TABLE:  # an emoji the noise filter removed
        return Reply(_TABLE[text], topic="chitchat")
    if not strip_noise(text):  # only emoji (and punctuation): the normaliser's own notion
        return Reply(EMOJI_REPLY, topic="chitchat")
    if _NUMBER.match(text):
        return Reply(NUMBER_HINT, topic="number")
    return None
