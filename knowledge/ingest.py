"""Document ingestion: a notice (.txt, .md, .docx, .pdf) becomes passages kept with its title and
文号, searched as a second tier when no curated entry is confident.

Uploads are hostile until read: a .docx is a zip whose parts are measured before anything is
unpacked, a PDF's pages and text are capped, and a document may make only so many passages.
"""
from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from storage import knowledge as kb_store

SUFFIXES = (".txt", ".md", ".docx", ".pdf")
PASSAGE_MIN, PASSAGE_MAX = 80, 320
MAX_FILE_BYTES = 20 * 1024 * 1024  # the file as given (the console's upload limit is lower)
MAX_UNPACKED_BYTES = 50 * 1024 * 1024  # a .docx's parts together, once unzipped (zip bombs)
MAX_ZIP_MEMBERS = 2000
MAX_PDF_PAGES = 500
MAX_TEXT_CHARS = 2_000_000  # text read from one file
MAX_PASSAGES = 2000  # passages per document: a notice makes tens
ROW_SEP = " | "  # between the cells of a table row, kept on its own line
_DOC_NO = re.compile(r"[\u4e00-\u9fa5]{2,12}〔\d{4}〕\d+号|第\d{5,7}号提案")
_SENTENCE = re.compile(r"(?<=[。；！？])")
_HEADER_ENDS = ("文件", "(通知)", "（通知）", "(通报)", "（通报）")  # 发文机关标志 such as "…局文件"
_ISSUER_ENDS = ("委员会", "党组", "党委", "党总支", "局", "区委", "团委", "政府", "办公室",
                "办公厅", "总队", "支队", "大队", "工会")
_NOT_TITLE = re.compile(r"^(签发人|密级|紧急程度|特急|加急|平急|发文日期|附件)|^\d{4}年\d{1,2}月\d{1,2}日$")
_BODY_MARKS = ("。", "，", "；", "：", ":")  # a title line has none of these
_FORWARDED = re.compile(r"^关于(?:印发|转发|下发)《(.+)》的通知$")
_CELL_GAP = re.compile(r"\s{2,}|(?<=[^\x00-\x7f])\s+|\s+(?=[^\x00-\x7f])")
_TITLE_MAX = 80


class IngestError(ValueError):
    """A file that cannot be ingested (type, encoding, empty, too big, too long)."""


@dataclass
class Document:
    key: str
    title: str
    doc_no: str
    passages: list[str]
    file: str


def read_text(path: Path) -> str:
    """The file's text. Raises IngestError for unsupported types, undecodable text, and files
    too big, before or after unpacking."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise IngestError(f"不支持的文件类型：{path.name}（支持 .txt .md .docx .pdf）")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise IngestError(f"文件过大：{path.name}（最大 {MAX_FILE_BYTES // 1024 // 1024} MB）")
    if suffix == ".docx":
        text = _read_docx(path)
    elif suffix == ".pdf":
        text = _read_pdf(path)
    else:
        text = _decode(path)
    if len(text) > MAX_TEXT_CHARS:
        raise IngestError(f"文件文字过多：{path.name}（{len(text)} 字，最多 {MAX_TEXT_CHARS} 字），"
                          "请拆分后分别导入")
    return text


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise IngestError(f"无法识别文件编码：{path.name}")


def check_unpacked_size(path: Path) -> None:
    """A .docx is a zip: add up what its parts would unpack to before reading any of them (the
    sizes are binding: zipfile stops at the stated size and checks the CRC). Raises IngestError."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"无法读取 Word 文件：{path.name}") from exc
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_ZIP_MEMBERS or unpacked > MAX_UNPACKED_BYTES:
        raise IngestError(f"Word 文件解压后过大：{path.name}（{unpacked // 1024 // 1024} MB，"
                          f"最多 {MAX_UNPACKED_BYTES // 1024 // 1024} MB）")


def _read_docx(path: Path) -> str:
    """Paragraphs and table rows in document order; a row's cells joined by ROW_SEP."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_unpacked_size(path)
    try:
        document = docx.Document(str(path))
        lines = []
        for block in document.element.body.iterchildren():
            tag = block.tag.rsplit("}", 1)[-1]
            if tag == "p":
                lines.append(Paragraph(block, document).text)
            elif tag == "tbl":
                lines += [_row([cell.text for cell in row.cells])
                          for row in Table(block, document).rows]
        return "\n".join(lines)
    except Exception as exc:  # python-docx raises several kinds on a broken file
        raise IngestError(f"无法读取 Word 文件：{path.name}") from exc


def _read_pdf(path: Path) -> str:
    """The text layer of each page (pypdf, layout mode, so a table row stays one line).
    Raises IngestError for a broken or scanned (image-only) PDF."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise IngestError(f"PDF 页数过多：{path.name}（{len(reader.pages)} 页，"
                              f"最多 {MAX_PDF_PAGES} 页）")
        pages, chars = [], 0
        for page in reader.pages:
            pages.append(page.extract_text(extraction_mode="layout") or "")
            chars += len(pages[-1])
            if chars > MAX_TEXT_CHARS:
                break
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many kinds on broken or hostile files
        raise IngestError(f"无法读取 PDF 文件：{path.name}") from exc
    text = "\n".join(_pdf_line(line) for page in pages for line in page.splitlines())
    if not text.strip():
        raise IngestError(f"PDF 里没有文字层（可能是扫描件）：{path.name}")
    return text


def _pdf_line(line: str) -> str:
    """A layout line: cells set apart by wide gaps are a table row; otherwise plain text."""
    stripped = line.strip()
    if not re.search(r"\S\s{2,}\S", stripped):
        return stripped
    cells = [c for c in _CELL_GAP.split(stripped) if c]
    if sum(len(c) >= 2 for c in cells) >= 2:
        return _row(cells)
    return "".join(cells)  # letter-spaced headings such as "通  知"


def _row(cells: list[str]) -> str:
    return ROW_SEP.join(" ".join(c.split()) for c in cells)


def parse(text: str, file_name: str, *, title: str | None = None,
          doc_no: str | None = None) -> Document:
    """Raises IngestError for an empty text or one that makes more than MAX_PASSAGES passages."""
    text = text.replace("\r\n", "\n").replace("**", "")
    lines = [ln.strip() for ln in text.split("\n")]
    if not any(lines):
        raise IngestError(f"文件是空的：{file_name}")
    found_no = _DOC_NO.search(text)
    doc_no = doc_no or (found_no.group(0) if found_no else "")
    title = _tidy(title or guess_title(lines))
    key = re.sub(r"[^0-9a-zA-Z_-]+", "-", Path(file_name).stem).strip("-") or \
        hashlib.sha1(text.encode()).hexdigest()[:12]
    passages = split(lines)
    if len(passages) > MAX_PASSAGES:
        raise IngestError(f"文件太长：{file_name} 切分后有 {len(passages)} 段，每个文件最多 "
                          f"{MAX_PASSAGES} 段，请拆分后分别导入")
    return Document(key=key, title=title, doc_no=doc_no, passages=passages, file=file_name)


def _tidy(title: str) -> str:
    return re.sub(r"(?<=[\u4e00-\u9fff\d])\s+(?=[\u4e00-\u9fff\d])", "", title.strip())


def _is_header(line: str) -> bool:
    """The issuing body's line above a notice's title (版头), a 文号, or a 签发人/密级 line."""
    if _DOC_NO.fullmatch(line) or _NOT_TITLE.search(line):
        return True
    if line.startswith("关于"):
        return False
    return line.endswith(_HEADER_ENDS) or (line.endswith(_ISSUER_ENDS) and len(line) <= 30)


def guess_title(lines: list[str]) -> str:
    """The notice's own title: the line (or lines, when it wraps) after the header and the 文号
    and before the salutation or the body. "关于印发《X》的通知" is titled X."""
    head = [line.strip("#").strip() for line in lines[:60]]
    numbered = [i for i, line in enumerate(head) if line and _DOC_NO.fullmatch(line)]
    starts = [numbered[0] + 1, 0] if numbered else [0]
    for start in starts:
        block = _title_block(head[start:])
        if block:
            forwarded = _FORWARDED.match(_tidy(block))
            return forwarded.group(1) if forwarded else block
    for line in head:
        if line and not _is_header(line) and len(line) >= 6:
            return line[:_TITLE_MAX]
    return "未命名文件"


def _title_block(lines: list[str]) -> str:
    """Consecutive title lines at the top of `lines`, headers skipped; '' if the body comes first."""
    block: list[str] = []
    for line in lines:
        if not line:
            if block:
                break
            continue
        if _is_header(line):
            if block:
                break
            continue
        if any(mark in line for mark in _BODY_MARKS) or len("".join(block) + line) > _TITLE_MAX:
            break
        block.append(line)
    return "".join(block)


def split(lines: list[str]) -> list[str]:
    """Paragraphs merged up to a readable size; long ones cut at sentence ends. A table row
    stays a line of its own."""
    passages: list[str] = []
    current = ""
    last_row = False
    for line in lines:
        if not line:
            continue
        row = ROW_SEP in line
        for piece in [line] if row else _pieces(line):
            sep = "\n" if current and (row or last_row) else ""
            if current and len(current) + len(sep) + len(piece) > PASSAGE_MAX:
                passages.append(current)
                current, sep = "", ""
            current += sep + piece
            if not row and len(current) >= PASSAGE_MIN and piece.endswith(("。", "；", "：")):
                passages.append(current)
                current = ""
        last_row = row
    if current:
        passages.append(current)
    return passages


def _pieces(line: str) -> list[str]:
    if len(line) <= PASSAGE_MAX:
        return [line]
    return [s for s in _SENTENCE.split(line) if s]


def ingest_file(db: Database, path: str | Path, now: datetime, *, title: str | None = None,
                doc_no: str | None = None) -> Document:
    """Read, split and store one file (replacing an earlier ingest of it) in one transaction
    that bumps the knowledge version once. Raises IngestError, and then stores nothing."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"找不到文件：{path}")
    doc = parse(read_text(path), path.name, title=title, doc_no=doc_no)
    kb_store.replace_document(db, doc_key=doc.key, title=doc.title, doc_no=doc.doc_no,
                              file=path.name, texts=doc.passages, now=now)
    return doc
