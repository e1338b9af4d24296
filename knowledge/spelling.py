"""Same-sounding typos and pinyin initials, corrected against the knowledge's own words.

Members type by pinyin, so a wrong character usually sounds like the right one (杨埔, 疗修养,
建筑拉圾). A window of the question that the knowledge never uses, but whose pinyin matches a
phrase the knowledge does use, is replaced by that phrase; a run of Latin letters that spells
the initials of one known topic word (gh, dj, jbh) becomes that word. Only the knowledge's
vocabulary is a target, so a question about something else stays as it was.
"""
from __future__ import annotations

import importlib.util
import re
from collections import Counter
from functools import lru_cache
from itertools import product

from pathlib import Path

from pypinyin import Style, pinyin

MAX_WINDOW = 4
MIN_INITIALS = 2
WORD_MIN_FREQ = 10  # jieba's list also holds rare misspellings (拉圾: 3)
# particles and pronouns sound like many things; a "typo" there is nearly always a real word
FUNCTION_CHARS = set("的地得在再是事有由那哪么吗嘛呢啊吧了又也就还和跟与或及个各这着者几己已以分份次位名件块项说")
_LATIN = re.compile(r"[a-z]+")
_HAN = re.compile(r"[\u3400-\u9fff]")
_ENTRY = re.compile(r"^(\S{2,4}) (\d+)", re.M)  # jieba's dict.txt: "word freq tag"


@lru_cache(maxsize=20000)
def readings(ch: str) -> tuple[str, ...]:
    """Toneless pinyin readings of one character ('' for anything that is not Han)."""
    if not _HAN.match(ch):
        return ("",)
    return tuple(dict.fromkeys(pinyin(ch, style=Style.NORMAL, heteronym=True)[0]))


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """General Chinese words of 2–4 characters (jieba's frequency list): typed correctly,
    they are what the member meant even when the knowledge never uses them."""
    spec = importlib.util.find_spec("jieba")  # the word list only: importing jieba is slow
    text = Path(spec.origin).with_name("dict.txt").read_text(encoding="utf-8")
    return frozenset(w for w, f in _ENTRY.findall(text) if int(f) >= WORD_MIN_FREQ)


def _key(word: str) -> tuple[str, ...]:
    return tuple(readings(ch)[0] for ch in word)


class Speller:
    """Built from the normalised knowledge: `vocabulary` (phrasings, keywords, names, with
    every 2–4 character window), `text` (answers: their 3–4 character windows), `topics`
    (words that pinyin initials may stand for)."""

    def __init__(self, vocabulary: list[str], text: list[str], topics: list[str]):
        common_words()  # loaded with the build, not by the first member's question
        grams: Counter = Counter(t for t in topics if 2 <= len(t) <= MAX_WINDOW)
        for phrase in vocabulary:
            for n in range(3, MAX_WINDOW + 1):
                grams.update(phrase[i:i + n] for i in range(len(phrase) - n + 1))
        for passage in text:
            for n in (3, MAX_WINDOW):
                grams.update(passage[i:i + n] for i in range(len(passage) - n + 1))
        first = {ch: readings(ch)[0] for ch in set("".join(grams))}
        by_sound: dict[tuple[str, ...], Counter] = {}
        for gram in grams:
            if all(first[ch] for ch in gram):  # Han characters only
                by_sound.setdefault(tuple(first[ch] for ch in gram), Counter())[gram] = grams[gram]
        self._by_sound = {k: max(sorted(c), key=c.get) for k, c in by_sound.items()}  # stable
        spelled: dict[str, set[str]] = {}  # "gh" and "gonghui" typed for 工会
        for word in topics:
            if len(word) >= MIN_INITIALS and all(_HAN.match(ch) for ch in word):
                sounds = _key(word)
                spelled.setdefault("".join(r[0] for r in sounds), set()).add(word)
                spelled.setdefault("".join(sounds), set()).add(word)
        self._spelled = {k: next(iter(v)) for k, v in spelled.items() if len(v) == 1}
        self._latin = {w for phrase in [*vocabulary, *text] for w in _LATIN.findall(phrase)}
        self._all_text = set()  # every window of every text, to tell "used" from "new"
        for phrase in [*vocabulary, *text]:
            for n in range(2, MAX_WINDOW + 1):
                self._all_text.update(phrase[i:i + n] for i in range(len(phrase) - n + 1))

    def correct(self, text: str) -> str:
        """The question with sound-alike windows and initials replaced by known words."""
        text = _LATIN.sub(self._expand_spelled, text)
        words = common_words()
        # words the member typed right: a character inside one is changed only when the
        # whole word lies inside a longer corrected window (修养 inside 疗修养)
        spans = [[] for _ in text]
        for n in range(2, MAX_WINDOW + 1):
            for j in range(len(text) - n + 1):
                if text[j:j + n] in words or text[j:j + n] in self._all_text:
                    for k in range(j, j + n):
                        spans[k].append((j, j + n))
        out, i = [], 0
        while i < len(text):
            fixed = None
            for n in range(MAX_WINDOW, 1, -1):
                window = text[i:i + n]
                if len(window) < n or window in self._all_text or window in words:
                    continue
                fixed = self._sound_alike(window)
                if fixed and any(a != b and (a in FUNCTION_CHARS or b in FUNCTION_CHARS)
                                 for a, b in zip(window, fixed)):
                    fixed = None
                if fixed and any(a != b and any(s < i or e > i + n or e - s >= n
                                                for s, e in spans[i + k])
                                 for k, (a, b) in enumerate(zip(window, fixed))):
                    fixed = None
                if fixed:
                    break
            if fixed:
                out.append(fixed)
                i += len(fixed)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _sound_alike(self, window: str) -> str | None:
        if not all(_HAN.match(ch) for ch in window):
            return None
        options = [readings(ch) for ch in window]
        if any(not r[0] for r in options):
            return None
        for key in product(*options):
            hit = self._by_sound.get(key)
            if hit and hit != window:
                differ = sum(a != b for a, b in zip(hit, window))
                if differ <= max(1, len(window) // 2):
                    return hit
        return None

    def _expand_spelled(self, match: re.Match) -> str:
        token = match.group(0)
        if token in self._spelled and len(token) <= 24:
            return self._spelled[token]
        if len(token) >= 3 and token not in self._latin and _HAN.search(match.string):
            return ""  # an English word the knowledge never uses ("total") is not the question
        return token
