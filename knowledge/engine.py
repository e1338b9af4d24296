"""The question-answering engine: BM25 first pass, rapidfuzz re-ranking, a calibrated confidence.

Below the threshold it never guesses: it declines and offers the closest questions.
Knowledge files, organiser edits and ingested documents are reloaded when they change.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rapidfuzz import fuzz, process

from knowledge import facets
from knowledge.common_chars import COMMON
from knowledge.data import (DATA_DIR, Entry, KnowledgeDataError, Source, data_files,
                            entry_from_dict, load_alliance, load_entries, load_outside,
                            load_sources, load_synonyms)
from knowledge.index import BM25Index, terms
from knowledge.normalize import Normalizer
from knowledge.spelling import Speller

log = logging.getLogger(__name__)

CANDIDATES = 20
MIN_QUERY = 2  # a lone character or digit is not a question
RELOAD_CHECK_SECONDS = 1.0
SUGGEST_MIN = 0.22
PASSAGE_MIN_COVERAGE = 0.85
TIE_MARGIN = 0.001  # two answers this close are a real choice: ask, never pick silently
GUESS_FLOOR = 0.08  # below the threshold by at most this much ...
GUESS_LEAD = 0.06  # ... and this far ahead of the next: "你是不是想问「…」" with its answer
FOREIGN_TOPIC = 0.2
NOT_STATED_OFF_TOPIC = 0.1  # a question naming none of the entry's topics needs a closer match
VIEW_DISCOUNT = 0.97  # a clause of the message counts a little less than the whole
MAX_VIEWS = 6
MIN_VIEW = 3  # content characters a clause needs to be searched on its own
QUERY_CACHE = 4096
LOCAL_FACETS_FROM = 120  # characters: longer answers are judged by the sentences about the question
_SENTENCE = re.compile(r"[。；;！？!?\n]+")
_YEAR = re.compile(r"(20[1-3]\d)年")
# what a silence note can be about that a member names when asking ("名额多少", "什么课程")
_ATTRIBUTE_NOUNS = {"地点", "路线", "名额", "条件", "课程", "租金", "主题", "形式", "机构", "名单", "人选",
                    "费用", "金额", "院校", "场地", "地址", "人数", "年限", "天数", "时长", "报名方式", "内容",
                    "流程", "物品", "礼品", "奖品", "届次"}
_GENERIC_TOPIC = re.compile(r"^(?:月份|时间|日期|项目|活动|工作|计划|安排|内容|情况|要求|主要内容|[\d一二三四五六七八九十]+月)$")
_YEAR_IN_TEXT = re.compile(r"(20[1-3]\d)(?=年|-|—|至)")
_MEMBERSHIP = re.compile(r"是不是[^，。]{1,8}(?:组|共同体)|那组|那个组|这个组|哪个组|哪一组|哪组|哪个共同体|哪个团建|哪一个共同体|属于哪|分在|归哪|在联盟里|参加哪个|"
                         r"加入哪个|是哪个组|哪几家一组|一组|同一组|一个组")
_CONFIRM = re.compile(r"(?:组|共同体)的?(?:吗|么|伐|嘛)|是不是.{0,8}(?:组|共同体)|对吗|对不对")
_GROUP_ATTRIBUTES = {
    "lead": re.compile(r"牵头|领头|带头|组长单位|负责单位|哪个区负责|谁负责"),
    "members": re.compile(r"成员单位|成员有|哪些单位|哪几个单位|哪几个区|哪几家|包括哪|都有谁|有哪些区"),
    "advisors": re.compile(r"指导员|哪个处指导|哪些处室"),
    "focus": re.compile(r"重点对象|面向|什么人|哪类青年|哪些青年|对象是"),
    "content": re.compile(r"主要内容|干什么的|做什么的|干啥的|是干嘛|搞什么活动|干些什么"),
}
# a member unit's own share of its group's work: the plan gives none
_ROLE = re.compile(r"具体负责|具体承担|承担哪|负责哪个项目|负责什么项目|负责干啥|负责做什么|负责什么工作|分工")
_CLAUSE = re.compile(r"[\s,，。.!！?？;；:：…~～]+|就是说|就是|然后|还有|另外|我想问一下|想问一下|想问问|想问下|请问|"
                     r"(?:那个)(?=[^个]{0,3}(?:我|就|想|问))")
WANTED = {"where": "具体地点", "clock": "具体钟点", "weekday": "星期几", "money": "费用或金额",
          "procedure": "具体办理方式", "person": "具体人员", "contact": "联系方式",
          "item": "具体发放的物品", "person_detail": "这位人员的具体情况", "since": "从什么时候开始",
          "compare": "和其他年份的比较", "award": "获奖结果", "role": "各成员单位的具体分工",
          "rank": "排名或比较", "meaning": "这个说法的具体含义", "choice": "你问的是哪一种",
          "month": "具体月份", "consequence": "没做到会怎样", "count": "具体数字", "ordinal": "名次",
          "when": "具体时间",
          "duration": "时长", "permission": "能不能这样做（如带家属、报销、线上参加）", "score": "分数要求", "result": "实际结果",
          "future": "以后的安排", "year": "你问的那一年的情况", "exam": "考试内容",
          "requirement": "具体条件", "name": "具体名称或名单", "date": "具体日期", "rate": "比率",
          "person_name": "具体姓名"}
# The latest build of each data folder's files alone, by the files' mtimes: Corpus is immutable,
# so engines on databases that add no knowledge (version 0) share it instead of rebuilding.
_FILES_ONLY: dict[Path, tuple[tuple, "Corpus"]] = {}
_QUESTION_WORDS = re.compile(
    r"什么时候|啥时候|是什么|是啥|什么|啥|多少|哪个|哪些|哪家|哪里|哪儿|哪天|哪位|怎么样|怎么|咋|如何|"
    r"是否|是不是|有没有|能不能|会不会|可不可以|可以|谁|几月|几个|几|吗|么|的|了|是|有|在|和|与|及|都|要|"
    r"我们|我|你们|你|他们|这个|那个|这|那|一下|一般|现在|今年|主要|具体|呢|啊|呀|吧|给|把|被|还|就|也|又")


def fingerprint(data_dir: Path, db: Callable | None) -> tuple:
    """What a build depends on: every knowledge file's mtime and size, and the database's
    knowledge version (bumped by every organiser edit, alias and ingested document)."""
    files = tuple((str(p), st.st_mtime_ns, st.st_size)
                  for p in data_files(data_dir) for st in [os.stat(p)])
    version = 0
    if db is not None:
        from storage import knowledge as kb_store

        version = kb_store.version(db())
    return files, version


@dataclass
class Candidate:
    entry: Entry
    bm25: float = 0.0
    similarity: float = 0.0
    coverage: float = 0.0
    novel: int = 0  # words of the question the whole knowledge base never uses
    foreign: int = 0  # topics the question names (体检, 虹口) that this entry never mentions
    keyword: float = 0.0
    missing: set = field(default_factory=set)
    confidence: float = 0.0
    relevance: float = 0.0  # the confidence but for the asked-for facets: suggestions, not-stated


@dataclass
class Answer:
    text: str | None  # the reply, with its source; None when declined
    entry_id: str | None
    score: float
    confident: bool
    kind: str  # entry | guess | passage | choose | not_stated | decline
    suggestions: list[tuple[str, str]] = field(default_factory=list)  # (entry id, question)
    candidates: list[Candidate] = field(default_factory=list)


class Corpus:
    """One immutable build of everything searchable; swapped whole on reload."""

    def __init__(self, entries: list[Entry], sources: dict[str, Source],
                 normalizer: Normalizer, passages: list[dict], alliance: list[dict] | None = None,
                 outside: list[str] | None = None):
        self.entries = entries
        self.by_id = {e.id: e for e in entries}
        self.position = {e.id: i for i, e in enumerate(entries)}
        self.sources = sources
        self.norm = normalizer
        nq = self.norm.normalize
        self.phrasings = [[nq(p) for p in e.phrasings] for e in entries]
        self.exact: dict[str, list[int]] = {}
        for i, ps in enumerate(self.phrasings):
            for p in ps:
                if i not in self.exact.setdefault(p, []):
                    self.exact[p].append(i)
        self.phrasing_content = [[_content(p) or p for p in ps] for ps in self.phrasings]
        self.keywords = [[nq(k, fillers=False) for k in e.keywords] for e in entries]
        self.stated = [facets.stated(e.answer) for e in entries]  # without "文件没有写…" notes
        self.answer_norm = [nq(text, fillers=False) for text in self.stated]
        self.full_text = ["".join(p) + "".join(k) + a for p, k, a in
                          zip(self.phrasings, self.keywords, self.answer_norm)]
        self.kinds = [facets.covered(e.answer, e.answers) for e in entries]
        # the document an entry comes from: naming it ("党建工作要点里…") is not another topic
        self.origin = [nq(f"{sources[e.source].title}{sources[e.source].issuer}", fillers=False)
                       if e.source in sources else "" for e in entries]
        self.unstated = [facets.unstated_terms(e.answer) for e in entries]
        self.sentences: dict[int, list[tuple[str, str]]] = {}  # long answers, for local facets
        named_things = [k for ks in self.keywords for k in ks] + normalizer.canonical_forms()
        self.outside = {t for t in (nq(o, fillers=False) for o in outside or []) if len(t) >= 2}
        self.topics = sorted({t for t in (nq(k, fillers=False) for ks in self.keywords for k in ks)
                              if len(t) >= 2 and not _QUESTION_WORDS.fullmatch(t)
                              and not _GENERIC_TOPIC.search(t)}
                             # topics the documents do not cover: an entry never names them,
                             # so a question about one is "foreign" to every entry
                             | self.outside, key=len, reverse=True)
        self._topic_re = re.compile("|".join(map(re.escape, self.topics))) if self.topics else None
        self.speller = Speller([p for ps in self.phrasings for p in ps] + named_things,
                               self.answer_norm, named_things)
        self.weights = term_weights(self.full_text)
        self.index = BM25Index([(p + k, a) for p, k, a in
                                zip(self.phrasings, self.keywords, self.answer_norm)])
        # the years an entry is about: those it names, else its document's year
        self.years = [set(_YEAR_IN_TEXT.findall(e.answer + e.question))
                      or ({sources[e.source].date[:4]} if e.source in sources
                          and sources[e.source].date[:4].isdigit() else set())
                      for e in entries]
        self.passages = passages
        self._queries: dict[str, str] = {}  # one answer normalises the message several times
        # the alliance's groups (alliance.yaml) by every name members use (法治专研, 法治组 …),
        # and its units' short names (虹口, 总队 …), for questions about who is in which group
        self.alliance = alliance or []
        self.group_names_by_key = {
            g["key"]: sorted({nq(n, fillers=False) for n in [g["name"], *(g.get("aliases") or [])]},
                             key=len, reverse=True) for g in self.alliance}
        self.unit_shorts = sorted({u["short"] for g in self.alliance
                                   for u in [g["lead"], *(g.get("members") or [])]})
        # the districts among them (虹口, 浦东), not 总队 or 机场, which are also ordinary words
        self.districts = sorted({u["short"] for g in self.alliance
                                 for u in [g["lead"], *(g.get("members") or [])]
                                 if u["unit"].startswith((u["short"] + "区", u["short"] + "新区"))})
        self.passage_norm = [nq(p["text"], fillers=False) for p in passages]
        self.p_index = BM25Index([([], t) for t in self.passage_norm])
        self.passage_kinds = [facets.covered(p["text"]) for p in passages]

    def about(self, i: int, places: list[str]) -> bool:
        """Whether an entry's whole document is about these places (普陀团区委's reply)."""
        source = self.sources.get(self.entries[i].source)
        return bool(source) and any(p in source.title for p in places)

    def topics_in(self, q: str) -> list[str]:
        """The knowledge's topic words named in a query, longest first, without overlaps."""
        return self._topic_re.findall(q) if self._topic_re else []

    def query(self, text: str) -> str:
        """A member's text in the form the index uses: normalised, typos and initials fixed."""
        hit = self._queries.get(text)
        if hit is None:
            hit = self.norm.normalize(self.speller.correct(self.norm.normalize(text)))
            if len(self._queries) >= QUERY_CACHE:
                self._queries.clear()
            self._queries[text] = hit
        return hit


class Engine:
    """Thread-safe: answers read one Corpus; reloads build a new one and swap it in."""

    def __init__(self, data_dir: Path = DATA_DIR, *, db: Callable | None = None,
                 threshold: float = 0.42):
        self.data_dir = Path(data_dir)
        self._db = db
        self.threshold = threshold
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self.owner = None  # a knowledge.service.Knowledge that rebuilds it off the request path
        self.corpus: Corpus = self._build()

    # --- building and reloading ---------------------------------------------------------
    def _fingerprint(self) -> tuple:
        return fingerprint(self.data_dir, self._db)

    def _build(self) -> Corpus:
        stamp = self._fingerprint()
        files, version = stamp
        shared = _FILES_ONLY.get(self.data_dir)
        if version == 0 and shared and shared[0] == files:
            self._stamp = stamp  # the database adds nothing: the files' build is reused
            return shared[1]
        entries = load_entries(self.data_dir)
        passages: list[dict] = []
        if self._db is not None:
            entries, passages = self._merge_database(entries)
        corpus = Corpus(entries, load_sources(self.data_dir),
                        Normalizer(load_synonyms(self.data_dir)), passages,
                        load_alliance(self.data_dir).get("groups"), load_outside(self.data_dir))
        if version == 0:
            _FILES_ONLY[self.data_dir] = (files, corpus)
        self._stamp = stamp
        return corpus

    def _merge_database(self, entries: list[Entry]) -> tuple[list[Entry], list[dict]]:
        """Organiser edits override file entries by id; aliases add phrasings."""
        from storage import knowledge as kb_store

        db = self._db()
        by_id = {e.id: e for e in entries}
        for row in kb_store.entries(db, include_deleted=True):
            if row["deleted"]:
                by_id.pop(row["id"], None)
                continue
            try:
                by_id[row["id"]] = entry_from_dict(json.loads(row["data"]), origin="organiser")
            except (KnowledgeDataError, ValueError) as exc:
                log.warning("skipping organiser entry %s: %s", row["id"], exc)
        for alias in kb_store.aliases(db):
            entry = by_id.get(alias["entry_id"])
            if entry and alias["alias"] not in entry.alts:
                entry.alts = [*entry.alts, alias["alias"]]
        return list(by_id.values()), kb_store.passages(db)

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """A standalone engine looks for changes at most once a second. An engine with an owner
        never builds here (answer() runs on the request path): its owner rebuilds and swaps it."""
        if self.owner is not None:
            return self.owner.refresh() if force else False
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_CHECK_SECONDS:
            return False
        self._checked = now
        if not force and self._fingerprint() == self._stamp:
            return False
        with self._lock:
            try:
                self.corpus = self._build()
            except KnowledgeDataError as exc:
                log.error("knowledge reload failed, keeping the previous build: %s", exc)
                return False
        log.info("knowledge reloaded: %d entries, %d passages", len(self.corpus.entries),
                 len(self.corpus.passages))
        return True

    # --- answering ------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        return self.corpus.query(text)

    def rank(self, question: str, k: int = 5) -> list[Candidate]:
        """Best entries for the message and for its clauses (a greeting or a self-introduction
        must not bury the question); what it asks for comes from the whole message."""
        c = self.corpus
        q = c.query(question)
        if len(q) < MIN_QUERY:
            return []
        asked = facets.asked(q)
        best: dict[str, Candidate] = {}
        named = c.topics_in(q)  # from the whole message: a clause must not drop its topic
        years = set(_YEAR.findall(q))
        units = facets.measures(q)
        for n, view in enumerate(self._views(question, q)):
            for cand in self._rank_view(view, asked, named, years, units,
                                        1.0 if n == 0 else VIEW_DISCOUNT):
                held = best.get(cand.entry.id)
                if held is None or cand.confidence > held.confidence:
                    best[cand.entry.id] = cand
        return sorted(best.values(), key=lambda x: -x.confidence)[:k]

    def _views(self, question: str, q: str) -> list[str]:
        """The whole message, then its clauses and pairs of neighbouring clauses."""
        c = self.corpus
        clauses = [v for v in (c.query(part) for part in _CLAUSE.split(question))
                   if len(_content(v)) >= MIN_VIEW]  # "工会" alone matches every union entry
        views = [q]
        if len(clauses) > 1:
            pairs = [a + b for a, b in zip(clauses, clauses[1:])]
            for v in [*reversed(clauses), *reversed(pairs)]:
                if v not in views:
                    views.append(v)
        return views[:MAX_VIEWS]

    def _rank_view(self, q: str, asked: set[str], named: list[str], years: set[str],
                   units: list[str], scale: float) -> list[Candidate]:
        c = self.corpus
        content = _content(q)
        query = content or q
        grams = _weighted_grams(content, c.weights)
        novel = _novel(content, c.weights)
        ideal = c.index.ideal(q)
        pool = {i: s / ideal for i, s in c.index.top(q, CANDIDATES)}
        ids = list(pool)
        strict = any(k in facets.STRICT for k in asked)
        options = facets.choices(q)
        places = [u for u in c.districts if u in q]  # a district's own figure or role
        role = bool(_ROLE.search(q))
        asked_terms = {t for k in asked for t in facets.FACET_TERMS.get(k, ())}
        own = [t for t in named if t not in c.outside]  # topics the documents cover
        sims = _similarities(query, [c.phrasing_content[i] for i in ids])
        out = []
        for i, sim in zip(ids, sims):
            cand = Candidate(c.entries[i], bm25=min(pool[i], 1.2), similarity=sim, novel=novel)
            cand.coverage = _coverage(grams, c.full_text[i])
            cand.keyword = 1.0 if any(k and k in q for k in c.keywords[i]) else 0.0
            kinds = c.kinds[i] if not strict else self._local_kinds(i, grams)
            cand.missing = facets.missing(asked, kinds)
            text = c.stated[i]
            if "name" in asked:
                if facets.listed_near(q, text) is False:
                    cand.missing.add("name")
                if facets.enumerated(q, text) is False:
                    cand.missing.add("name")
                elif "name" in cand.missing and facets.pair_named(q, text):
                    cand.missing.discard("name")
            if "count" in asked and "count" not in cand.missing and any(
                    not facets.counts_in(text, m) for m in units):
                cand.missing.add("count")
            if places and ({"count", "rate"} & asked) and not c.about(i, places) \
                    and not facets.figure_near(text, places):
                cand.missing.add("count")  # the entry's figure is the whole system's
            if places and role and c.entries[i].id.startswith("alliance-"):
                cand.missing.add("role")
            if "ordinal" in asked and not facets.ordinal_in(q, text):
                cand.missing.add("ordinal")
            if any(a not in c.full_text[i] and b not in c.full_text[i] for a, b in options):
                cand.missing.add("choice")
            if "meaning" in asked and facets.explained(q, text) is False:
                cand.missing.add("meaning")
            silent = c.unstated[i] and (
                {t for t in c.unstated[i] if t in _ATTRIBUTE_NOUNS and t in q}
                | {t for t in asked_terms if any(t in u for u in c.unstated[i])})
            if silent:
                cand.missing |= {f"term:{t}" for t in silent}  # the entry itself says it is not stated
            if years and c.years[i] and not years & c.years[i]:
                cand.missing.add("year")  # asked about 2024, the entry is about 2023
            cand.foreign = sum(1 for t in own if t not in c.full_text[i] and t not in c.origin[i])
            if not any(t in c.full_text[i] for t in own):  # "…我好请假" beside 疗休养 is incidental
                cand.foreign += len(named) - len(own)
            cand.confidence = round(_confidence(cand) * scale, 4)
            cand.relevance = round(_confidence(cand, penalties=False) * scale, 4)
            out.append(cand)
        return out

    def answer(self, question: str) -> Answer:
        """The tiers, in order: an exact phrasing; a confident entry (unless a close rival
        answers differently: then a choice); an entry that would answer but for a detail the
        documents do not state ("没有找到…", with what they do state); a clear lead below the
        threshold ("你是不是想问"); an ingested passage; a decline with suggestions."""
        self.reload_if_changed()
        c = self.corpus
        q = c.query(question)
        exact = [c.entries[i] for i in c.exact.get(q, [])]
        if exact:
            own = [e for e in exact if e.origin == "organiser"]
            exact = own if len(own) == 1 else exact  # an organiser's phrasing is deliberate
            if len({e.answer for e in exact}) > 1:
                return Answer(None, None, 1.0, False, "choose",
                              candidates=[_certain(e) for e in exact],
                              suggestions=[(e.id, e.question) for e in exact[:3]])
        entry = exact[0] if exact else self._unit_membership(q) or self._group_attribute(q)
        if entry:
            return Answer(self.format(entry), entry.id, 1.0, True, "entry",
                          candidates=[_certain(entry)])
        ranked = self.rank(question, k=CANDIDATES)
        best = ranked[0] if ranked else None
        if best and best.confidence >= self.threshold:
            rivals = [r for r in ranked[1:] if best.confidence - r.confidence < TIE_MARGIN
                      and r.entry.answer != best.entry.answer]
            if rivals:
                return Answer(None, None, best.confidence, False, "choose",
                              suggestions=[(r.entry.id, r.entry.question)
                                           for r in [best, *rivals][:3]], candidates=ranked)
            return Answer(self.format(best.entry), best.entry.id, best.confidence, True,
                          "entry", candidates=ranked)
        near = max(ranked, key=lambda r: r.relevance) if ranked else None
        on_topic = bool(near) and near.foreign == 0 and bool(c.topics_in(q))
        if near and near.missing and near.relevance >= self.threshold + (
                0.0 if on_topic else NOT_STATED_OFF_TOPIC):
            return Answer(self.format_not_stated(near.entry, near.missing), near.entry.id,
                          near.relevance, False, "not_stated", candidates=ranked)
        if best and not best.missing and best.confidence >= self.threshold - GUESS_FLOOR:
            second = ranked[1].confidence if len(ranked) > 1 else 0.0
            if best.confidence - second >= GUESS_LEAD:
                return Answer(f"你是不是想问：「{best.entry.question}」\n" + self.format(best.entry),
                              best.entry.id, best.confidence, True, "guess", candidates=ranked)
        passage = self._passage(question)
        if passage is not None:
            text, score, key = passage
            return Answer(text, f"passage:{key}", score, True, "passage", candidates=ranked)
        return Answer(None, None, best.confidence if best else 0.0, False, "decline",
                      suggestions=self._suggest(ranked), candidates=ranked)

    def _unit_membership(self, q: str) -> Entry | None:
        """"金山在哪个组", however long the message around it: the one unit named, its group."""
        c = self.corpus
        confirm = bool(_CONFIRM.search(q))  # "徐汇是法治专研那组的吗": the unit's entry says yes or no
        if not _MEMBERSHIP.search(q) or (not confirm and any(
                n in q for names in c.group_names_by_key.values() for n in names)):
            return None
        units = {u for u in c.unit_shorts if u in q}
        if len(units) != 1:
            return None
        return c.by_id.get(f"alliance-unit-{units.pop()}")

    def _local_kinds(self, i: int, grams: list[tuple[str, float]]) -> set[str]:
        """What the part of a long answer about the question can tell: a date in another
        sentence of a long answer does not say when *this* thing happens."""
        c = self.corpus
        entry = c.entries[i]
        if len(entry.answer) <= LOCAL_FACETS_FROM:
            return c.kinds[i]
        sentences = c.sentences.get(i)
        if sentences is None:  # normalised once per build, on first use
            raw = [s for s in _SENTENCE.split(c.stated[i]) if s.strip()]
            sentences = c.sentences[i] = [(s, c.norm.normalize(s, fillers=False)) for s in raw]
        if len(sentences) < 3:
            return c.kinds[i]
        scored = [sum(w for g, w in grams if g in norm) for _, norm in sentences]
        best = max(range(len(sentences)), key=lambda n: scored[n])
        if not scored[best]:
            return c.kinds[i]
        near = "。".join(raw for raw, _ in sentences[max(0, best - 1):best + 2])
        # a list runs across the sentences split here ("…；…；…"); enumerated() checks its length
        return facets.covered(near, entry.answers) | (c.kinds[i] & {"name"})

    def _group_attribute(self, q: str) -> Entry | None:
        """"执法创新那个组是哪个区牵头的", however long: one group named, one thing asked of it."""
        c = self.corpus
        named = {key for key, names in c.group_names_by_key.items() if any(n in q for n in names)}
        wanted = {attr for attr, pattern in _GROUP_ATTRIBUTES.items() if pattern.search(q)}
        if len(named) != 1 or len(wanted) != 1 or any(u in q for u in c.unit_shorts):
            return None
        i = c.position.get(f"alliance-{named.pop()}-{wanted.pop()}")
        if i is None or facets.missing(facets.asked(q), c.kinds[i]):
            return None
        return c.entries[i]

    def _passage(self, question: str) -> tuple[str, float, str] | None:
        """Second tier: an ingested passage that covers every content word of the question."""
        c = self.corpus
        if not c.passages:
            return None
        q = c.query(question)
        content = _content(q)
        if len(content) < 3:
            return None
        asked = facets.asked(q)
        grams = _weighted_grams(content, c.weights)
        for i, _ in c.p_index.top(q, 5):
            coverage = _coverage(grams, c.passage_norm[i])
            if coverage < PASSAGE_MIN_COVERAGE or facets.missing(asked, c.passage_kinds[i]):
                continue
            p = c.passages[i]
            cite = f"《{p['title']}》" + (f"（{p['doc_no']}）" if p.get("doc_no") else "")
            body = _excerpt(p["text"], 450)
            return (f"文件原文摘录：{body}\n——出处：{cite}", round(coverage, 3),
                    f"{p['doc_key']}#{p['seq']}")
        return None

    def _suggest(self, ranked: list[Candidate]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for cand in sorted(ranked, key=lambda c: -c.relevance):
            if cand.relevance < SUGGEST_MIN or len(out) == 3:
                break
            if all(fuzz.ratio(cand.entry.question, q) < 80 for _, q in out):
                out.append((cand.entry.id, cand.entry.question))
        return out

    def format(self, entry: Entry) -> str:
        source = self.corpus.sources.get(entry.source)
        cite = source.citation if source else entry.source
        return f"{entry.answer}\n——出处：{cite}"

    def format_not_stated(self, entry: Entry, missing: set[str]) -> str:
        wanted = "、".join(dict.fromkeys(WANTED.get(m, m.removeprefix("term:")) for m in sorted(missing)))
        return f"没有找到：文件没有写{wanted}。文件里写的是：\n" + self.format(entry)

    def entry(self, entry_id: str) -> Entry | None:
        return self.corpus.by_id.get(entry_id)

    def entries(self) -> list[Entry]:
        return list(self.corpus.entries)

    def search(self, query: str, limit: int = 20) -> list[tuple[Entry, float]]:
        """Browse: entries by relevance to a query (all entries when the query is empty)."""
        if not query.strip():
            return [(e, 0.0) for e in self.corpus.entries[:limit]]
        return [(c.entry, c.confidence) for c in self.rank(query, k=limit)]


def _certain(entry: Entry) -> Candidate:
    """The candidate of an answer that needed no ranking (an exact phrasing, a structured fact)."""
    return Candidate(entry, similarity=1.0, coverage=1.0, confidence=1.0, relevance=1.0)


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "……"


def _content(q: str) -> str:
    return _QUESTION_WORDS.sub("", q)


def _similarities(q: str, groups: list[list[str]]) -> list[float]:
    """Best similarity of q to each group of phrasings, computed in one rapidfuzz call.

    Edit similarity; partial matches count only for longer strings and by length ratio,
    because partial_ratio rates a two-character query inside any sentence near 100.
    """
    flat = [p for g in groups for p in g]
    if not flat:
        return [0.0] * len(groups)
    ratio = process.cdist([q], flat, scorer=fuzz.ratio, dtype=np.uint8)[0] / 100
    lengths = np.fromiter((len(p) for p in flat), dtype=np.float32, count=len(flat))
    short = np.minimum(lengths, len(q))
    long_ = np.maximum(np.maximum(lengths, len(q)), 1)
    if len(q) >= 4:
        partial = process.cdist([q], flat, scorer=fuzz.partial_ratio, dtype=np.uint8)[0] / 100
        partial = np.where(short >= 4, partial * (0.55 + 0.45 * short / long_), 0.0)
        ratio = np.maximum(ratio, partial)
    out, start = [], 0
    for g in groups:
        out.append(float(ratio[start:start + len(g)].max()) if g else 0.0)
        start += len(g)
    return out


def term_weights(texts: list[str]) -> dict[str, float]:
    """IDF of every unigram and bigram over the whole knowledge text."""
    df: dict[str, int] = {}
    for text in texts:
        for t in set(terms(text)):
            df[t] = df.get(t, 0) + 1
    n = len(texts) or 1
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def _weight(gram: str, weights: dict[str, float]) -> float:
    """A bigram the knowledge never uses weighs what its characters weigh: two common
    characters side by side are a word boundary, an unknown character is a new word (杭州)."""
    if gram in weights:
        return weights[gram]
    unseen = math.log(1 + (len(weights) or 1))
    return sum(weights.get(ch, unseen) for ch in gram) / len(gram)


def _weighted_grams(content: str, weights: dict[str, float]) -> list[tuple[str, float]]:
    """The question's content bigrams (else characters) with their weights, once per question."""
    grams = [t for t in dict.fromkeys(terms(content)) if len(t) == 2] or list(dict.fromkeys(content))
    return [(g, _weight(g, weights)) for g in grams]


def _coverage(grams: list[tuple[str, float]], text: str) -> float:
    """IDF-weighted share of the question's content found in the text."""
    total = sum(w for _, w in grams)
    if not total:
        return 1.0
    return sum(w for g, w in grams if g in text) / total


def _novel(content: str, weights: dict[str, float]) -> int:
    """Bigrams the knowledge never uses that contain a character it (almost) never uses:
    a new word such as 杭州 or 嘉宾, not two common characters side by side."""
    count = 0
    for gram in dict.fromkeys(terms(content)):
        if len(gram) == 2 and gram not in weights and any(
                ch not in weights and ch not in COMMON for ch in gram):
            count += 1
    return count


def _confidence(c: Candidate, penalties: bool = True) -> float:
    score = (0.30 * min(c.bm25, 1.0) + 0.30 * c.similarity + 0.32 * c.coverage
             + 0.08 * c.keyword)
    score -= 0.15 * c.novel + FOREIGN_TOPIC * c.foreign
    if penalties and c.missing:
        score -= 1.0  # a detail the entry cannot give: never answered with the entry
    return round(max(0.0, score), 4)
