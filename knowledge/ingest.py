"""Document ingestion: a notice (.txt, .md, .docx) becomes passages kept with its title and 文号,
searched as a second tier when no curated entry is confident."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from storage import knowledge as kb_store

SUFFIXES = (".txt", ".md", ".docx")
PASSAGE_MIN, PASSAGE_MAX = 80, 320
_DOC_NO = re.compile(r"[\u4e00-\u9fa5]{2,12}〔\d{4}〕\d+号|第\d{5,7}号提案")
_QUOTED_TITLE = re.compile(r"《([^》]{2,80})》")
_SENTENCE = re.compile(r"(?<=[。；！？])")


class IngestError(ValueError):
    """A file that cannot be ingested (type, encoding, empty)."""


@dataclass
class Document:
    key: str
    title: str
    doc_no: str
    passages: list[str]
    file: str


def read_text(path: Path) -> str:
    """Raises IngestError for unsupported types and undecodable text."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise IngestError(f"不支持的文件类型：{path.name}（支持 .txt .md .docx）")
    if suffix == ".docx":
        import docx

        try:
            return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
        except Exception as exc:  # python-docx raises several kinds on a broken file
            raise IngestError(f"无法读取 Word 文件：{path.name}") from exc
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise IngestError(f"无法识别文件编码：{path.name}")


def parse(text: str, file_name: str, *, title: str | None = None,
          doc_no: str | None = None) -> Document:
    text = text.replace("\r\n", "\n").replace("**", "")
    lines = [ln.strip() for ln in text.split("\n")]
    if not any(lines):
        raise IngestError(f"文件是空的：{file_name}")
    found_no = _DOC_NO.search(text)
    doc_no = doc_no or (found_no.group(0) if found_no else "")
    title = re.sub(r"(?<=[\u4e00-\u9fff\d])\s+(?=[\u4e00-\u9fff\d])", "", title or _guess_title(lines))
    key = re.sub(r"[^0-9a-zA-Z_-]+", "-", Path(file_name).stem).strip("-") or \
        hashlib.sha1(text.encode()).hexdigest()[:12]
    return Document(key=key, title=title, doc_no=doc_no, passages=split(lines), file=file_name)


def _guess_title(lines: list[str]) -> str:
    for line in lines[:15]:
        quoted = _QUOTED_TITLE.search(line)
        if quoted and ("印发" in line or "通知" in line or "提案" in line):
            return quoted.group(1)
    for line in lines[:15]:
        if line and not _DOC_NO.fullmatch(line) and len(line) >= 6:
            return line.strip("#").strip()
    return "未命名文件"


def split(lines: list[str]) -> list[str]:
    """Paragraphs merged up to a readable size; long ones cut at sentence ends."""
    passages: list[str] = []
    current = ""
    for line in lines:
        if not line:
            continue
        for piece in _pieces(line):
            if current and len(current) + len(piece) > PASSAGE_MAX:
                passages.append(current)
                current = ""
            current += piece
            if len(current) >= PASSAGE_MIN and piece.endswith(("。", "；", "：")):
                passages.append(current)
                current = ""
    if current:
        passages.append(current)
    return passages


def _pieces(line: str) -> list[str]:
    if len(line) <= PASSAGE_MAX:
        return [line]
    return [s for s in _SENTENCE.split(line) if s]


def ingest_file(db: Database, path: str | Path, now: datetime, *, title: str | None = None,
                doc_no: str | None = None) -> Document:
    """Read, split and store one file (replacing an earlier ingest of it). Raises IngestError."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"找不到文件：{path}")
    doc = parse(read_text(path), path.name, title=title, doc_no=doc_no)
    kb_store.replace_document(db, doc_key=doc.key, title=doc.title, doc_no=doc.doc_no,
                              file=path.name, texts=doc.passages, now=now)
    return doc
