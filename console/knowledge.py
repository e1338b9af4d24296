"""知识库: browse and search entries, edit or add one, test a question, turn an unanswered
question into an entry or an alias in one step, upload a document to ingest.

The engine (knowledge.engine_for) answers and searches; storage/knowledge.py keeps the edits.
Everyone logged in may browse and test; only admins change the knowledge.
"""
from __future__ import annotations

import re
import secrets
import tempfile
from dataclasses import asdict
from pathlib import Path

from flask import (Blueprint, abort, flash, redirect, render_template, request, url_for)

from console.auth import actor, db, login_required, now, record, runtime, scope
from knowledge import engine_for
from knowledge.data import KnowledgeDataError, entry_from_dict
from knowledge.ingest import IngestError, ingest_file
from storage import knowledge as kb_store

bp = Blueprint("knowledge", __name__, url_prefix="/knowledge")
EDIT = "admin"
PER_PAGE = 20
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
OTHER_SOURCE = "_other"
MAX_ANSWER = 1500


def engine():
    return engine_for(runtime())


def _after_change() -> None:
    """Edits land in the database; this process answers from them before the save returns
    (other processes' watchers pick them up within a second or two)."""
    runtime().knowledge.refresh()


def entry_dict(entry) -> dict:
    data = asdict(entry)
    data.pop("origin", None)
    return data


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,，、;；]+", text or "") if w]


def entry_from_form(form, base: dict | None = None) -> dict:
    """The entry an admin typed, merged over the one being edited (fields the form does not
    show, such as `answers`, are kept). Raises KnowledgeDataError when it cannot be used."""
    data = dict(base or {})
    source = form.get("source", "").strip()
    if source == OTHER_SOURCE:
        source = form.get("source_other", "").strip()
    data.update(question=form.get("question", "").strip(), answer=form.get("answer", "").strip(),
                source=source, alts=_lines(form.get("alts", "")),
                keywords=_words(form.get("keywords", "")))
    if not data.get("id"):
        wanted = form.get("id", "").strip().lower()
        data["id"] = wanted or f"org-{secrets.token_hex(3)}"
        if not ID_RE.match(data["id"]) or data["id"] == "new":
            raise KnowledgeDataError("编号只能用小写字母、数字、- 和 _（2–63 位）")
        if engine().entry(data["id"]) is not None:
            raise KnowledgeDataError(f"编号 {data['id']} 已被使用")
    if len(data["answer"]) > MAX_ANSWER:
        raise KnowledgeDataError(f"答案太长（最多 {MAX_ANSWER} 字），请拆成几个条目")
    missing = [label for key, label in (("question", "问题"), ("answer", "答案"), ("source", "出处"))
               if not data.get(key)]
    if missing:
        raise KnowledgeDataError("请填写" + "、".join(missing))
    entry_from_dict(data, origin="organiser")
    return data


def form_values(data: dict) -> dict:
    sources = engine().corpus.sources
    source = data.get("source", "")
    known = source in sources or not source
    return {"id": data.get("id", ""), "question": data.get("question", ""),
            "answer": data.get("answer", ""), "alts": "\n".join(data.get("alts") or []),
            "keywords": "、".join(data.get("keywords") or []),
            "source": source if known else OTHER_SOURCE, "source_other": "" if known else source}


def _form_page(template: str, status: int = 200, **context):
    return render_template(template, sources=engine().corpus.sources, other=OTHER_SOURCE,
                           **context), status


def _test(question: str) -> dict | None:
    question = (question or "").strip()[:300]
    if not question:
        return None
    eng = engine()
    answer = eng.answer(question)
    entry = eng.entry(answer.entry_id) if answer.entry_id else None
    return {"question": question, "answer": answer, "entry": entry,
            "candidates": [(c.entry, c.confidence) for c in answer.candidates[:5]
                           if c.confidence > 0],
            "threshold": eng.threshold}


def search(eng, q: str, limit: int) -> list[tuple[object, float | None]]:
    """Entries that contain the words first (in a phrasing or keyword, then in the answer),
    then the engine's fuzzy matches: "体检" lists the check-up entries before anything alike."""
    needle = q.casefold()
    in_question, in_answer = [], []
    for entry in eng.entries():
        if any(needle in p.casefold() for p in [*entry.phrasings, *entry.keywords]):
            in_question.append(entry)
        elif needle in entry.answer.casefold():
            in_answer.append(entry)
    exact = (in_question + in_answer)[:limit]
    seen = {e.id for e in exact}
    ranked = eng.search(q, limit=limit)
    scores = {e.id: score for e, score in ranked}
    fuzzy = [(e, score) for e, score in ranked if score > 0 and e.id not in seen]
    return [(e, scores.get(e.id)) for e in exact] + fuzzy[:max(0, limit - len(exact))]


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    """Browse or search; POST is the "test a question" box (nothing is recorded)."""
    eng, database = engine(), db()
    q = (request.args.get("q") or "").strip()[:100]
    source = request.args.get("source") or ""
    page = max(1, request.args.get("page", 1, type=int))
    if q:
        results = [(e, score) for e, score in search(eng, q, PER_PAGE)
                   if not source or e.source == source]
        total = len(results)
    else:
        entries = [e for e in eng.entries() if not source or e.source == source]
        total = len(entries)
        results = [(e, None) for e in entries[(page - 1) * PER_PAGE: page * PER_PAGE]]
    test = _test(request.form.get("question")) if request.method == "POST" else None
    return render_template(
        "console/knowledge.html", q=q, source=source, page=page, results=results, total=total,
        pages=1 if q else max(1, -(-total // PER_PAGE)), test=test, sources=eng.corpus.sources,
        edited={row["id"] for row in kb_store.entries(database)},
        unanswered=[] if scope().limited else kb_store.unanswered(database, "open", limit=30),
        documents=kb_store.documents(database))


@bp.get("/entries/<entry_id>")
@login_required
def entry(entry_id: str):
    found = engine().entry(entry_id)
    if found is None:
        abort(404)
    return _form_page("console/entry.html", entry=found, values=form_values(entry_dict(found)),
                      error=None, edited=_edited(entry_id))


def _edited(entry_id: str) -> dict | None:
    return next((r for r in kb_store.entries(db()) if r["id"] == entry_id), None)


@bp.post("/entries/<entry_id>")
@login_required(role=EDIT)
def save(entry_id: str):
    found = engine().entry(entry_id)
    if found is None:
        abort(404)
    try:
        data = entry_from_form(request.form, entry_dict(found))
    except KnowledgeDataError as exc:
        return _form_page("console/entry.html", 400, entry=found, values=dict(request.form),
                          error=str(exc), edited=_edited(entry_id))
    kb_store.save_entry(db(), data, actor(), now())
    _after_change()
    record("修改条目", entry_id, data["question"][:60])
    flash("已保存，机器人马上按新内容回答。", "ok")
    return redirect(url_for(".entry", entry_id=entry_id))


@bp.post("/entries/<entry_id>/delete")
@login_required(role=EDIT)
def delete(entry_id: str):
    found = engine().entry(entry_id)
    if found is None:
        abort(404)
    kb_store.delete_entry(db(), entry_id, actor(), now())
    _after_change()
    record("删除条目", entry_id, found.question[:60])
    flash(f"已删除条目“{found.question}”。", "ok")
    return redirect(url_for(".index"))


@bp.route("/entries/new", methods=["GET", "POST"])
@login_required(role=EDIT)
def new():
    if request.method == "GET":
        return _form_page("console/entry.html", entry=None, error=None, edited=None,
                          values={"question": request.args.get("question", "")[:200]})
    try:
        data = entry_from_form(request.form)
    except KnowledgeDataError as exc:
        return _form_page("console/entry.html", 400, entry=None, values=dict(request.form),
                          error=str(exc), edited=None)
    kb_store.save_entry(db(), data, actor(), now())
    _after_change()
    record("新建条目", data["id"], data["question"][:60])
    flash("条目已添加，机器人马上就能回答。", "ok")
    return redirect(url_for(".entry", entry_id=data["id"]))


# --- unanswered questions ------------------------------------------------------------------

def _unanswered_or_404(unanswered_id: int) -> dict:
    row = kb_store.get_unanswered(db(), unanswered_id)
    if row is None:
        abort(404)
    return row


@bp.get("/unanswered/<int:unanswered_id>")
@login_required(role=EDIT)
def unanswered(unanswered_id: int):
    row = _unanswered_or_404(unanswered_id)
    return _unanswered_page(row, values={"question": row["question"]}, error=None)


def _unanswered_page(row: dict, values: dict, error: str | None, status: int = 200):
    candidates = [(c.entry, c.confidence) for c in engine().rank(row["question"], k=6)
                  if c.confidence > 0]
    return _form_page("console/unanswered.html", status, row=row, values=values, error=error,
                      candidates=candidates)


@bp.post("/unanswered/<int:unanswered_id>/entry")
@login_required(role=EDIT)
def answer_with_entry(unanswered_id: int):
    """One step: a new entry for the question, and the question marked resolved."""
    row = _unanswered_or_404(unanswered_id)
    try:
        data = entry_from_form(request.form)
    except KnowledgeDataError as exc:
        return _unanswered_page(row, dict(request.form), str(exc), 400)
    database = db()
    kb_store.save_entry(database, data, actor(), now())
    if row["question"] != data["question"] and row["question"] not in data["alts"]:
        kb_store.add_alias(database, row["question"], data["id"], actor(), now())
    kb_store.resolve_unanswered(database, unanswered_id, data["id"])
    _after_change()
    record("新建条目", data["id"], f"回答未答问题：{row['question'][:60]}")
    flash("已新建条目，成员再问这个问题时机器人会回答。", "ok")
    return redirect(url_for(".index") + "#unanswered")


@bp.post("/unanswered/<int:unanswered_id>/alias")
@login_required(role=EDIT)
def answer_with_alias(unanswered_id: int):
    """One step: the question becomes another phrasing of an existing entry."""
    row = _unanswered_or_404(unanswered_id)
    entry_id = (request.form.get("entry_id_other") or request.form.get("entry_id") or "").strip()
    target = engine().entry(entry_id) if entry_id else None
    if target is None:
        return _unanswered_page(row, {"question": row["question"]},
                                "请选择一个已有条目（或填写正确的条目编号）", 400)
    database = db()
    kb_store.add_alias(database, row["question"], target.id, actor(), now())
    kb_store.resolve_unanswered(database, unanswered_id, target.id)
    _after_change()
    record("添加别名", target.id, row["question"][:60])
    flash(f"已把“{row['question']}”设为“{target.question}”的另一种问法。", "ok")
    return redirect(url_for(".index") + "#unanswered")


@bp.post("/unanswered/<int:unanswered_id>/dismiss")
@login_required(role=EDIT)
def dismiss(unanswered_id: int):
    row = _unanswered_or_404(unanswered_id)
    kb_store.dismiss_unanswered(db(), unanswered_id)
    record("忽略未答问题", None, row["question"][:60])
    flash("已忽略这个问题。", "ok")
    return redirect(url_for(".index") + "#unanswered")


# --- documents -------------------------------------------------------------------------------

def _upload_name(name: str) -> str:
    """The uploaded file's own name without any path, kept for the document list."""
    base = re.split(r"[\\/]", name or "")[-1].replace("\x00", "").strip()
    return base[-120:] if base.strip(".") else "upload"


@bp.post("/upload")
@login_required(role=EDIT)
def upload():
    """Ingest a notice (.txt .md .docx .pdf) as passages with knowledge.ingest, as the CLI does."""
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        flash("请选择要导入的文件。", "bad")
        return redirect(url_for(".index") + "#documents")
    name = _upload_name(upload_file.filename)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        upload_file.save(path)
        try:
            doc = ingest_file(db(), path, now(),
                              title=request.form.get("title", "").strip() or None,
                              doc_no=request.form.get("doc_no", "").strip() or None)
        except IngestError as exc:
            flash(str(exc), "bad")
            return redirect(url_for(".index") + "#documents")
    _after_change()
    record("导入文档", doc.key, f"《{doc.title}》{doc.doc_no}，{len(doc.passages)} 段")
    flash(f"已导入《{doc.title}》{doc.doc_no}，共 {len(doc.passages)} 段。条目答不上的问题会在原文里找答案。",
          "ok")
    return redirect(url_for(".index") + "#documents")
