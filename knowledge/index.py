"""A BM25 index over character unigrams and bigrams, with numpy postings.

Chinese is not segmented here: unigrams catch typos and partial words, bigrams carry most
of the meaning. Scoring adds each query term's precomputed posting weights into one score
array, so cost grows with the postings touched, not with the number of entries.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

K1, B = 1.2, 0.75
UNIGRAM_WEIGHT = 0.35  # a shared character says less than a shared word
COMMON_DF = 0.12  # unigrams in more than this share of documents are skipped in big indexes
BIG_INDEX = 5000


def terms(text: str) -> list[str]:
    """Unigrams and bigrams of an already normalised string."""
    grams = list(text)
    grams += [text[i:i + 2] for i in range(len(text) - 1)]
    return grams


def doc_terms(pieces: list[str]) -> list[str]:
    """Terms of a document made of separate pieces (phrasings): no bigram spans two pieces."""
    out: list[str] = []
    for piece in pieces:
        out += terms(piece)
    return out


class BM25Index:
    def __init__(self, docs: list[list[str]]):
        self.n = len(docs)
        df: Counter = Counter()
        tfs: list[Counter] = []
        lengths = np.zeros(max(self.n, 1), dtype=np.float32)
        for i, doc in enumerate(docs):
            tf = Counter(doc_terms(doc))
            tfs.append(tf)
            df.update(tf.keys())
            lengths[i] = sum(len(p) for p in doc)
        avg = float(lengths[: self.n].mean()) if self.n else 1.0
        postings: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        self.idf: dict[str, float] = {}
        for term, d in df.items():
            self.idf[term] = math.log(1 + (self.n - d + 0.5) / (d + 0.5))
        for i, tf in enumerate(tfs):
            norm = K1 * (1 - B + B * lengths[i] / (avg or 1.0))
            for term, f in tf.items():
                weight = self.idf[term] * f * (K1 + 1) / (f + norm)
                if len(term) == 1:
                    weight *= UNIGRAM_WEIGHT
                ids, ws = postings[term]
                ids.append(i)
                ws.append(weight)
        self.postings = {t: (np.asarray(ids, dtype=np.int32), np.asarray(ws, dtype=np.float32))
                         for t, (ids, ws) in postings.items()}
        self.df = df
        self._skip_common = self.n >= BIG_INDEX

    def query_terms(self, text: str) -> list[str]:
        out = []
        for term in dict.fromkeys(terms(text)):
            if term not in self.postings:
                continue
            if self._skip_common and len(term) == 1 and self.df[term] > COMMON_DF * self.n:
                continue
            out.append(term)
        return out

    def ideal(self, text: str) -> float:
        """What a document made of exactly this text would roughly score: the normaliser."""
        total = 0.0
        for term in dict.fromkeys(terms(text)):
            idf = self.idf.get(term, math.log(1 + (self.n + 0.5) / 0.5))
            total += idf * (UNIGRAM_WEIGHT if len(term) == 1 else 1.0)
        return total or 1.0

    def top(self, text: str, k: int) -> list[tuple[int, float]]:
        """The k best documents for a normalised query, best first."""
        if not self.n:
            return []
        scores = np.zeros(self.n, dtype=np.float32)
        for term in self.query_terms(text):
            ids, ws = self.postings[term]
            scores[ids] += ws
        k = min(k, self.n)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]
