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
                            entry_from_dict, load_entries, load_sources, load_synonyms)
from knowledge.index import BM25Index, terms
from knowledge.normalize import Normalizer

log = logging.getLogger(__name__)

CANDIDATES = 20
MIN_QUERY = 2  # a lone character or digit is not a question
RELOAD_CHECK_SECONDS = 1.0
SUGGEST_MIN = 0.22
PASSAGE_MIN_COVERAGE = 0.85
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
    keyword: float = 0.0
    missing: set = field(default_factory=set)
    confidence: float = 0.0
    relevance: float = 0.0  # the confidence before the facet penalties: for suggestions


@dataclass
class Answer:
    text: str | None  # the reply, with its source; None when declined
    entry_id: str | None
    score: float
    confident: bool
    kind: str  # entry | passage | decline
    suggestions: list[tuple[str, str]] = field(default_factory=list)  # (entry id, question)
    candidates: list[Candidate] = field(default_factory=list)


class Corpus:
    """One immutable build of everything searchable; swapped whole on reload."""

    def __init__(self, entries: list[Entry], sources: dict[str, Source],
                 normalizer: Normalizer, passages: list[dict]):
        self.entries = entries
        self.by_id = {e.id: e for e in entries}
        self.sources = sources
        self.norm = normalizer
        nq = self.norm.normalize
        self.phrasings = [[nq(p) for p in e.phrasings] for e in entries]
        self.phrasing_content = [[_content(p) or p for p in ps] for ps in self.phrasings]
        self.keywords = [[nq(k, fillers=False) for k in e.keywords] for e in entries]
        self.answer_norm = [nq(facets.stated(e.answer), fillers=False) for e in entries]
        self.full_text = ["".join(p) + "".join(k) + a for p, k, a in
                          zip(self.phrasings, self.keywords, self.answer_norm)]
        self.kinds = [facets.covered(e.answer, e.answers) for e in entries]
        self.weights = term_weights(self.full_text)
        self.index = BM25Index([(p + k, a) for p, k, a in
                                zip(self.phrasings, self.keywords, self.answer_norm)])
        self.passages = passages
        self.passage_norm = [nq(p["text"], fillers=False) for p in passages]
        self.p_index = BM25Index([([], t) for t in self.passage_norm])
        self.passage_kinds = [facets.covered(p["text"]) for p in passages]


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
                        Normalizer(load_synonyms(self.data_dir)), passages)
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
        return self.corpus.norm.normalize(text)

    def rank(self, question: str, k: int = 5) -> list[Candidate]:
        c = self.corpus
        q = c.norm.normalize(question)
        if len(q) < MIN_QUERY:
            return []
        asked = facets.asked(q)
        content = _content(q)
        query = content or q
        grams = _weighted_grams(content, c.weights)
        novel = _novel(content, c.weights)
        ideal = c.index.ideal(q)
        pool = {i: s / ideal for i, s in c.index.top(q, CANDIDATES)}
        ids = list(pool)
        sims = _similarities(query, [c.phrasing_content[i] for i in ids])
        out = []
        for i, sim in zip(ids, sims):
            cand = Candidate(c.entries[i], bm25=min(pool[i], 1.2), similarity=sim, novel=novel)
            cand.coverage = _coverage(grams, c.full_text[i])
            cand.keyword = 1.0 if any(k and k in q for k in c.keywords[i]) else 0.0
            cand.missing = facets.missing(asked, c.kinds[i])
            cand.confidence = _confidence(cand)
            cand.relevance = _confidence(cand, penalties=False)
            out.append(cand)
        out.sort(key=lambda x: -x.confidence)
        return out[:k]

    def answer(self, question: str) -> Answer:
        self.reload_if_changed()
        ranked = self.rank(question, k=8)
        if ranked and ranked[0].confidence >= self.threshold:
            best = ranked[0]
            return Answer(self.format(best.entry), best.entry.id, best.confidence, True,
                          "entry", candidates=ranked)
        passage = self._passage(question)
        if passage is not None:
            text, score, key = passage
            return Answer(text, f"passage:{key}", score, True, "passage", candidates=ranked)
        return Answer(None, None, ranked[0].confidence if ranked else 0.0, False, "decline",
                      suggestions=self._suggest(ranked), candidates=ranked)

    def _passage(self, question: str) -> tuple[str, float, str] | None:
        """Second tier: an ingested passage that covers every content word of the question."""
        c = self.corpus
        if not c.passages:
            return None
        q = c.norm.normalize(question)
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

    def entry(self, entry_id: str) -> Entry | None:
        return self.corpus.by_id.get(entry_id)

    def entries(self) -> list[Entry]:
        return list(self.corpus.entries)

    def search(self, query: str, limit: int = 20) -> list[tuple[Entry, float]]:
        """Browse: entries by relevance to a query (all entries when the query is empty)."""
        if not query.strip():
            return [(e, 0.0) for e in self.corpus.entries[:limit]]
        return [(c.entry, c.confidence) for c in self.rank(query, k=limit)]


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
    if penalties:
        score -= 0.5 * len(c.missing) + 0.15 * c.novel
    return round(max(0.0, score), 4)
