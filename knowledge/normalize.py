"""Chinese input as members type it -> one canonical form for matching.

Full/half width, traditional forms, punctuation, emoji and filler words are folded away;
synonyms and typos map to one spelling. Queries and entries go through the same steps.
"""
from __future__ import annotations

import re
import unicodedata

import zhconv

FILLERS = (
    "请问一下", "请问", "问一下", "想问一下", "想问下", "我想问", "想问", "问下", "麻烦问下", "麻烦",
    "打扰一下", "你好", "您好", "小助手", "助手", "谢谢", "多谢", "帮我查一下", "帮我查查", "帮我查",
    "帮忙查一下", "告诉我", "我想知道", "想知道", "知道吗", "能告诉我", "有谁知道", "大家好",
)
FILLER_CHARS = "呀啊呢吧嘛哦哈呗啦咧喔噢哇嘞诶欸哎"
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_DIGIT_WORDS = {"二〇二五": "2025", "二〇二四": "2024", "二〇二三": "2023", "二零二五": "2025",
                "二零二四": "2024", "二零二三": "2023"}
_LATIN_WORDS = re.compile(r"[a-z0-9][a-z0-9 ']*")
_YEAR_SHORT = re.compile(r"(?<!\d)(2[345])年")


def fold(text: str) -> str:
    """Width, case, traditional forms; keeps punctuation (for display-safe comparisons)."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return zhconv.convert(text, "zh-cn")


def strip_noise(text: str) -> str:
    """Remove punctuation, emoji and spaces (anything that is not a letter or digit)."""
    return _PUNCT.sub("", "".join(ch for ch in text if not _is_emoji(ch)))


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or 0x1F000 <= ord(ch) <= 0x1FAFF


class Normalizer:
    """normalize(text) -> canonical matching form. Built from the synonyms table."""

    def __init__(self, synonyms: dict[str, list[str]] | None = None):
        pairs: list[tuple[str, str]] = []
        words: list[tuple[str, str]] = []  # Latin-letter variants: whole words only
        for canonical, variants in (synonyms or {}).items():
            canon = strip_noise(fold(str(canonical)))
            for variant in variants or []:
                folded = fold(str(variant)).strip()
                if _LATIN_WORDS.fullmatch(folded):
                    words.append((folded, canon))
                    continue
                var = strip_noise(folded)
                # one-character variants ("组") would rewrite inside other words ("组织")
                if len(var) >= 2 and var != canon and canon not in var:
                    pairs.append((var, canon))
        # canonical forms match as themselves first, so a variant inside one ("进博" in
        # "进博会") is left alone
        canon_forms = {c for _, c in pairs}
        pairs += [(c, c) for c in canon_forms if c not in dict(pairs)]
        pairs.sort(key=lambda p: -len(p[0]))
        self._pairs = pairs
        self._pattern = re.compile("|".join(re.escape(v) for v, _ in pairs)) if pairs else None
        self._map = dict(pairs)
        words.sort(key=lambda p: -len(p[0]))
        self._words = {"".join(w.split()): c for w, c in words}
        self._word_pattern = re.compile(
            r"(?<![a-z])(?:" + "|".join(r"\s*".join(map(re.escape, w.split())) for w, _ in words)
            + r")(?![a-z])") if words else None

    def canonical_forms(self) -> list[str]:
        """The canonical words of the synonyms table (topics members name)."""
        return sorted({c for _, c in self._pairs})

    def normalize(self, text: str, *, fillers: bool = True) -> str:
        text = fold(text)
        if self._word_pattern is not None:  # "hi" in "which" is not a greeting
            text = self._word_pattern.sub(
                lambda m: self._words["".join(m.group(0).split())], text)
        text = strip_noise(text)
        for word, digits in _DIGIT_WORDS.items():
            text = text.replace(word, digits)
        text = _YEAR_SHORT.sub(lambda m: f"20{m.group(1)}年", text)
        if fillers:
            for word in FILLERS:
                text = text.replace(word, "")
            stripped = text.strip(FILLER_CHARS)
            text = stripped or text
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: self._map[m.group(0)], text)
        return text
