"""Question-answering benchmark: the engine against two baselines, on the same entries.

    python bench/qa.py [--sets dev,heldout1,heldout2,heldout3,heldout4] [--sizes 1000,10000,100000]

Sets: dev is ../shared/eval/dev.jsonl (public, tuned against); heldout1 to heldout4 are
bench/heldout*.jsonl, written from the documents by helpers who never saw knowledge/data/
and frozen before tuning (heldout1 before the first round, heldout3 and heldout4 after it;
their sha256 is in the README). Only totals and per-kind figures are printed for them, never
single questions. Default: all five.

Accuracy runs the dev set through the same router as the webhook (signed XML parsed into a
message, the pipeline, the handlers). Baselines: rapidfuzz extractOne with WRatio over the
entry questions, and plain BM25 over character bigrams. Latency pads the index with synthetic
entries built from the knowledge's own sentences. A benchmark, not a test: it prints figures.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz, process  # noqa: E402

from handlers import pipeline  # noqa: E402
from knowledge import engine_for  # noqa: E402
from knowledge.data import Entry  # noqa: E402
from knowledge.engine import Corpus, Engine  # noqa: E402
from runtime import Runtime  # noqa: E402
from settings import Settings  # noqa: E402
from simulator.client import text_xml  # noqa: E402
from wechat.messages import parse  # noqa: E402

DECLINE = "没有找到"


def clean(text: str) -> str:
    return "".join(text.split()).replace("—", "-").replace("～", "-")


def judge(row: dict, reply: str | None) -> bool:
    reply = reply or ""
    declined = reply.startswith(DECLINE) or not reply
    if row["kind"] == "outofscope":
        return declined
    if declined:
        return False
    text = clean(reply)
    return ((not row["any"] or any(clean(a) in text for a in row["any"]))
            and all(clean(a) in text for a in row["all"]))


class BigramBM25:
    """The plain baseline: BM25 over character bigrams of question+alts+answer, top-1 answered."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tfs = [Counter(d[i:i + 2] for i in range(len(d) - 1)) for d in docs]
        self.lens = [max(1, len(d) - 1) for d in docs]
        self.avg = sum(self.lens) / len(self.lens)
        df = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.post = defaultdict(list)
        for i, tf in enumerate(self.tfs):
            for t, f in tf.items():
                self.post[t].append((i, f))

    def best(self, q: str) -> tuple[int, float]:
        scores: dict[int, float] = defaultdict(float)
        for t in {q[i:i + 2] for i in range(len(q) - 1)}:
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, f in self.post[t]:
                norm = self.k1 * (1 - self.b + self.b * self.lens[i] / self.avg)
                scores[i] += idf * f * (self.k1 + 1) / (f + norm)
        if not scores:
            return -1, 0.0
        i = max(scores, key=scores.get)
        return i, scores[i]


def accuracy_table(rows: list[dict], results: dict[str, list[bool]]) -> None:
    kinds = sorted({r["kind"] for r in rows}, key=lambda k: (k == "outofscope", k))
    names = list(results)
    print(f"{'':22}" + "".join(f"{n:>22}" for n in names))
    in_scope = [i for i, r in enumerate(rows) if r["kind"] != "outofscope"]
    oos = [i for i, r in enumerate(rows) if r["kind"] == "outofscope"]

    def pct(ok: list[bool], idx: list[int]) -> str:
        return f"{sum(ok[i] for i in idx)}/{len(idx)} {100 * sum(ok[i] for i in idx) / len(idx):5.1f}%"

    print(f"{'overall':22}" + "".join(f"{pct(results[n], list(range(len(rows)))):>22}" for n in names))
    print(f"{'in-scope answered right':22}" + "".join(f"{pct(results[n], in_scope):>22}" for n in names))
    print(f"{'out-of-scope declined':22}" + "".join(f"{pct(results[n], oos):>22}" for n in names))
    for kind in kinds:
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        print(f"  {kind:20}" + "".join(f"{pct(results[n], idx):>22}" for n in names))


def padded_entries(base: list[Entry], size: int, seed: int = 1) -> list[Entry]:
    """Synthetic entries made of the knowledge's own sentence pieces (realistic characters)."""
    rng = random.Random(seed)
    pieces = [p for e in base for p in e.answer.replace("。", "，").split("，") if len(p) >= 4]
    out = list(base)
    for i in range(max(0, size - len(base))):
        body = "，".join(rng.sample(pieces, 3)) + "。"
        q = rng.choice(pieces)[:14]
        out.append(Entry(id=f"pad-{i}", question=q + "是什么", alts=[q[::-1][:10]], answer=body,
                         source="union2025"))
    return out


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(engine: Engine, questions: list[str], sizes: list[int]) -> None:
    base = engine.corpus
    print(f"\nPer-query latency (ms), {len(questions)} dev questions x 3 rounds, same process:")
    print(f"{'entries':>9} {'engine p50':>11} {'engine p95':>11} {'WRatio p50':>11} "
          f"{'WRatio p95':>11} {'bigramBM25 p50':>15} {'bigramBM25 p95':>15} {'build s':>8}")
    for size in sizes:
        t0 = time.perf_counter()
        entries = padded_entries(base.entries, size)
        engine.corpus = Corpus(entries, base.sources, base.norm, [], base.alliance)
        build = time.perf_counter() - t0
        norm = engine.corpus.norm.normalize
        choices = [norm(p) for e in entries for p in e.phrasings]
        bm = BigramBM25([norm(" ".join(e.phrasings) + e.answer) for e in entries])
        gc.collect()
        gc.freeze()  # the indexes are long-lived: keep the collector from rescanning them
        normalised = [norm(q) for q in questions]

        def timed(fn, inputs) -> list[float]:
            """Each system in its own loop: interleaving would let one evict the other's cache."""
            out = []
            for _ in range(3):
                engine.corpus._queries.clear()  # each round normalises afresh, as a new question
                for x in inputs:
                    t = time.perf_counter()
                    fn(x)
                    out.append((time.perf_counter() - t) * 1000)
            return out

        eng = timed(lambda q: Engine.answer(engine, q), questions)  # the whole question, no cache
        wr = timed(lambda q: process.extractOne(q, choices, scorer=fuzz.WRatio), normalised)
        bmt = timed(bm.best, normalised)
        print(f"{size:>9} {statistics.median(eng):>11.3f} {percentile(eng, 95):>11.3f} "
              f"{statistics.median(wr):>11.2f} {percentile(wr, 95):>11.2f} "
              f"{statistics.median(bmt):>15.3f} {percentile(bmt, 95):>15.3f} {build:>8.1f}")
        del choices, bm
        gc.unfreeze()
    engine.corpus = base


def calibrate(engine: Engine) -> None:
    """Threshold table on data independent of the dev set: one held-out phrasing per entry
    (removed from the index) as in-scope, bench/calibration_outofscope.txt as out-of-scope."""
    base = engine.corpus
    rng = random.Random(7)
    entries = [Entry(**{**e.__dict__, "alts": list(e.alts)}) for e in base.entries]
    held = {}
    for e in entries:
        if len(e.alts) >= 2:
            held[e.id] = e.alts.pop(rng.randrange(len(e.alts)))
    engine.corpus = Corpus(entries, base.sources, base.norm, [], base.alliance)
    oos = [line.strip() for line in open(ROOT / "bench" / "calibration_outofscope.txt",
                                         encoding="utf-8") if line.strip() and not line.startswith("#")]
    ins = []
    for eid, q in held.items():
        ranked = engine.rank(q, k=1)
        ins.append((ranked[0].confidence, ranked[0].entry.id == eid) if ranked else (0.0, False))
    outs = [(engine.rank(q, k=1) or [None])[0] for q in oos]
    out_scores = [c.confidence if c else 0.0 for c in outs]
    engine.corpus = base
    print(f"\nCalibration ({len(ins)} held-out phrasings, {len(oos)} out-of-scope questions):")
    print(f"{'threshold':>10} {'in-scope right':>15} {'declined':>9}")
    for th in (0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.50, 0.55, 0.60):
        right = sum(1 for s, ok in ins if s >= th and ok) / len(ins)
        declined = sum(1 for s in out_scores if s < th) / len(out_scores)
        mark = "  <- BOT_CONFIDENCE" if abs(th - engine.threshold) < 1e-9 else ""
        print(f"{th:>10.2f} {right:>15.3f} {declined:>9.3f}{mark}")


SETS = {"dev": ROOT.parent / "shared" / "eval" / "dev.jsonl",
        "heldout1": ROOT / "bench" / "heldout1.jsonl",
        "heldout2": ROOT / "bench" / "heldout2.jsonl",
        "heldout3": ROOT / "bench" / "heldout3.jsonl",
        "heldout4": ROOT / "bench" / "heldout4.jsonl"}


def declined(reply: str | None) -> bool:
    return not reply or reply.startswith(DECLINE)


def run_set(rt: Runtime, engine: Engine, rows: list[dict], offset: int) -> dict[str, list]:
    """Each question through the webhook's pipeline, and the two baselines on the same entries."""
    replies = []
    for n, row in enumerate(rows):
        replies.append(pipeline.handle(rt, parse(text_xml(f"oBench{offset + n:05d}", row["q"]))))
    corpus = engine.corpus
    entries = corpus.entries
    norm = corpus.norm.normalize
    owners, choices = [], []
    for i, e in enumerate(entries):
        for p in e.phrasings:
            owners.append(i)
            choices.append(norm(p))
    bm = BigramBM25([norm(" ".join(e.phrasings) + e.answer) for e in entries])
    wratio, bm25 = [], []
    for row in rows:
        q = norm(row["q"])
        match = process.extractOne(q, choices, scorer=fuzz.WRatio)
        wratio.append(engine.format(entries[owners[match[2]]]) if match else None)
        i, _ = bm.best(q)
        bm25.append(engine.format(entries[i]) if i >= 0 else None)
    return {"engine (webhook)": replies, "WRatio extractOne": wratio, "bigram BM25": bm25}


def confident_wrong(rows: list[dict], replies: list) -> int:
    """Answers given (not declined, not a question back) that are wrong: the costly mistakes."""
    return sum(1 for row, reply in zip(rows, replies)
               if not declined(reply) and not reply.startswith("你想问的是哪一个")
               and not judge(row, reply))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev,heldout1,heldout2,heldout3,heldout4",
                    help="names from " + ", ".join(SETS) + " or paths to .jsonl files")
    ap.add_argument("--dev", help="(old flag) path of the dev set")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--show-misses", action="store_true", help="dev set only")
    args = ap.parse_args()
    names = [n for n in args.sets.split(",") if n]
    paths = {n: Path(args.dev) if n == "dev" and args.dev else SETS.get(n, Path(n)) for n in names}

    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(Settings(wechat_token="bench", data_dir=Path(tmp)).validated())
        engine = engine_for(rt)
        summary = []
        offset = 0
        for name in names:
            rows = [json.loads(line) for line in open(paths[name], encoding="utf-8") if line.strip()]
            results = run_set(rt, engine, rows, offset)
            offset += len(rows)
            ok = {k: [judge(r, x) for r, x in zip(rows, v)] for k, v in results.items()}
            print(f"\n== {name}: {len(rows)} questions ({paths[name].name}); {len(engine.corpus.entries)} "
                  f"entries, threshold {engine.threshold}")
            accuracy_table(rows, ok)
            wrong = {k: confident_wrong(rows, v) for k, v in results.items()}
            print(f"{'confident wrong':22}" + "".join(f"{wrong[k]:>22}" for k in results))
            if args.show_misses and name == "dev":
                for row, reply, good in zip(rows, results["engine (webhook)"], ok["engine (webhook)"]):
                    if not good:
                        print(f"  miss {row['id']} {row['q']} -> {(reply or '')[:60]!r}")
            ins = [i for i, r in enumerate(rows) if r["kind"] != "outofscope"]
            oos = [i for i, r in enumerate(rows) if r["kind"] == "outofscope"]
            e_ok = ok["engine (webhook)"]
            summary.append((name, sum(e_ok[i] for i in ins) / max(1, len(ins)),
                            sum(e_ok[i] for i in oos) / max(1, len(oos)), wrong["engine (webhook)"]))
        rt.executor.shutdown()
        print("\nSummary (engine through the webhook):")
        print(f"{'set':10} {'in scope right':>15} {'out of scope declined':>22} {'confident wrong':>16}")
        for name, a, b, w in summary:
            print(f"{name:10} {100 * a:>14.1f}% {100 * b:>21.1f}% {w:>16}")
        calibrate(engine)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        dev_rows = [json.loads(line) for line in open(paths.get("dev", SETS["dev"]), encoding="utf-8")
                    if line.strip()]
        latency(engine, [r["q"] for r in dev_rows], sizes)


if __name__ == "__main__":
    main()
