"""A fielded BM25 index over character unigrams and bigrams, with numpy postings.

Chinese is not segmented here: unigrams catch typos and partial words, bigrams carry most
of the meaning. Each entry has two fields, its phrasings (question, alts, keywords) and its
answer. A first pass adds precomputed posting weights into one score array to pick
candidates; the candidates are then scored exactly, per field, with every term.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

K1, B = 1.2, 0.75
UNIGRAM_WEIGHT = 0.35  # a shared character says less than a shared word
ANSWER_WEIGHT = 0.8  # a match in the answer counts a little less than in a phrasing
BIG_INDEX = 5000  # from this size the first pass skips unigrams and very common bigrams
COMMON_DF = 0.05
FIRST_PASS_TERMS = 10  # in a big index, the rarest (most telling) terms of a question


def terms(text: str) -> list[str]:
    """Unigrams and bigrams of an already normalised string."""
    grams = list(text)
    grams += [text[i:i + 2] for i in range(len(text) - 1)]
    return grams


def doc_terms(pieces: list[str]) -> list[str]:
    """Terms of a field made of separate pieces (phrasings): no bigram spans two pieces."""
    out: list[str] = []
    for piece in pieces:
        out += terms(piece)
    return out


class BM25Index:
    """docs: (phrasing pieces, answer text) per entry; either may be empty."""

    def __init__(self, docs: list[tuple[list[str], str]]):
        self.n = len(docs)
        df: Counter = Counter()
        fields: list[tuple[Counter, Counter]] = []
        q_len = np.zeros(max(self.n, 1), dtype=np.float32)
        a_len = np.zeros(max(self.n, 1), dtype=np.float32)
        for i, (pieces, answer) in enumerate(docs):
            tq, ta = Counter(doc_terms(pieces)), Counter(terms(answer))
            fields.append((tq, ta))
            df.update(set(tq) | set(ta))
            q_len[i] = sum(len(p) for p in pieces)
            a_len[i] = len(answer)
        avg_q = float(q_len[: self.n].mean()) if self.n else 1.0
        avg_a = float(a_len[: self.n].mean()) if self.n else 1.0
        self.idf = {t: math.log(1 + (self.n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.df = df
        raw: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for i, (tq, ta) in enumerate(fields):
            nq = K1 * (1 - B + B * q_len[i] / (avg_q or 1.0))
            na = K1 * (1 - B + B * a_len[i] / (avg_a or 1.0))
            for term in tq.keys() | ta.keys():
                scale = self.idf[term] * (UNIGRAM_WEIGHT if len(term) == 1 else 1.0) * (K1 + 1)
                fq, fa = tq.get(term, 0), ta.get(term, 0)
                ids, ws = raw[term]
                ids.append(i)
                # per term, the better of its phrasing weight and its discounted answer weight
                ws.append(max(scale * fq / (fq + nq) if fq else 0.0,
                              ANSWER_WEIGHT * scale * fa / (fa + na) if fa else 0.0))
        self.postings = {term: (np.asarray(ids, dtype=np.int32), np.asarray(ws, dtype=np.float32))
                         for term, (ids, ws) in raw.items()}
        self._big = self.n >= BIG_INDEX

    def query_terms(self, text: str) -> list[str]:
        return [t for t in dict.fromkeys(terms(text)) if t in self.postings]

    def _first_pass_terms(self, text: str) -> list[str]:
        found = self.query_terms(text)
        if not self._big:
            return found
        limit = COMMON_DF * self.n
        bigrams = [t for t in found if len(t) == 2 and self.df[t] <= limit]
        chosen = bigrams or [t for t in found if self.df[t] <= limit] or found
        return sorted(chosen, key=lambda t: self.df[t])[:FIRST_PASS_TERMS]

    def ideal(self, text: str) -> float:
        """What a field made of exactly this text would roughly score: the normaliser."""
        total = 0.0
        unseen = math.log(1 + (self.n + 0.5) / 0.5)
        for term in self._scored_terms(text, all_terms=True):
            total += self.idf.get(term, unseen) * (UNIGRAM_WEIGHT if len(term) == 1 else 1.0)
        return total or 1.0

    def _scored_terms(self, text: str, all_terms: bool = False) -> list[str]:
        grams = list(dict.fromkeys(terms(text)))
        if not self._big:
            return grams if all_terms else [t for t in grams if t in self.postings]
        known = set(self._first_pass_terms(text))
        # in a big index the skipped common terms leave the normaliser too
        return [t for t in grams if t in known or (all_terms and t not in self.postings
                                                    and len(t) == 2)]

    def top(self, text: str, k: int) -> list[tuple[int, float]]:
        """The k best documents for a normalised query, best first, with their scores:
        per term the better of its phrasing and (discounted) answer weight."""
        if not self.n:
            return []
        scores = np.zeros(self.n, dtype=np.float32)
        for term in self._scored_terms(text):
            ids, weights = self.postings[term]
            scores[ids] += weights
        touched = np.flatnonzero(scores)  # partition only these: ties at zero are slow
        if not len(touched):
            return []
        k = min(k, len(touched))
        chosen = touched[np.argpartition(-scores[touched], k - 1)[:k]]
        chosen = chosen[np.argsort(-scores[chosen])]
        return [(int(i), float(scores[i])) for i in chosen]
