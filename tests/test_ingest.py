"""Ingesting notices: PDFs (text layer, table rows kept as rows), the notice's own title rather
than the issuing body's header, and caps that keep a hostile upload from eating the machine."""
from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest
import yaml
from click.testing import CliRunner

from bot import cli
from knowledge import ingest
from knowledge.data import DATA_DIR
from knowledge.ingest import IngestError, ingest_file
from storage import knowledge as kb_store
from tests.conftest import ROOT, TOKEN

SEEDS = ROOT.parent / "shared" / "seeds"
HEADER = "上海市城市管理行政执法局工会委员会文件"
TITLE = "关于举办2026年职工乒乓球比赛的通知"
BODY = ("为丰富职工文化生活，经研究，定于2026年10月18日在徐汇区职工活动中心举办职工乒乓球比赛，"
        "每个基层工会可报名男女选手各2名，报名截止时间为9月30日。")
TABLE = [["项目", "月份", "负责部门"], ["职工体检", "9月", "工会办公室"],
         ["乒乓球比赛", "10月", "文体委员会"]]


def write_pdf(path, paragraphs: list[str], table: list[list[str]] | None = None):
    """A real PDF with Chinese text (reportlab's built-in CID font, no font file needed)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    style = ParagraphStyle("cn", fontName="STSong-Light", fontSize=12, leading=20, wordWrap="CJK")
    story = [Paragraph(text, style) for text in paragraphs]
    if table:
        story.append(Table(table, style=[("FONTNAME", (0, 0), (-1, -1), "STSong-Light")]))
    SimpleDocTemplate(str(path), pagesize=A4).build(story)
    return path


@pytest.fixture
def notice_pdf(tmp_path):
    return write_pdf(tmp_path / "乒乓球比赛通知.pdf",
                     [HEADER, "沪城管工〔2026〕9号", TITLE, "各基层工会：", BODY], TABLE)


def cli_env(settings) -> dict:
    return {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN,
            "WECHAT_API_BASE": settings.wechat_api_base}


def test_python_bot_py_ingest_reads_a_pdf_notice(settings, rt, db, notice_pdf, wechat):
    version = kb_store.version(db)
    result = CliRunner().invoke(cli, ["ingest", str(notice_pdf)], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert f"《{TITLE}》 沪城管工〔2026〕9号" in result.output
    [stored] = kb_store.documents(db)
    assert stored["title"] == TITLE and stored["doc_no"] == "沪城管工〔2026〕9号"
    text = "\n".join(p["text"] for p in kb_store.passages(db))
    assert "徐汇区职工活动中心" in text
    rows = [line for line in text.splitlines() if " | " in line]
    assert rows == ["项目 | 月份 | 负责部门", "职工体检 | 9月 | 工会办公室",
                    "乒乓球比赛 | 10月 | 文体委员会"]
    assert kb_store.version(db) == version + 1
    assert rt.knowledge.wait_until_current(15)  # the running bot rebuilds off the request path
    reply = wechat.text("oAsker00009", "乒乓球比赛报名截止时间").text
    assert "9月30日" in reply and "沪城管工〔2026〕9号" in reply


def test_the_console_upload_takes_a_pdf(console, rt, notice_pdf):  # noqa: F811
    resp = console.post("/admin/knowledge/upload",
                        {"file": (io.BytesIO(notice_pdf.read_bytes()), "通知.pdf")},
                        content_type="multipart/form-data", follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert f"已导入《{TITLE}》" in page and HEADER not in page
    assert 'accept=".pdf' in console.get("/admin/knowledge/").get_data(as_text=True)


@pytest.mark.parametrize("lines,title", [
    ([HEADER, "沪城管工〔2026〕9号", "", TITLE, "", "各基层工会：", BODY], TITLE),
    (["上海市城市管理行政执法局工会委员会", "", TITLE, "", BODY], TITLE),  # no 文号
    (["中共上海市城市管理行政执法局党组(通知)", "", "关于印发《2026年团建工作要点》的通知",
      "各区局：", BODY], "2026年团建工作要点"),
    (["# 关于举办2026年城管青年读书会的通知", "", "沪城管团〔2026〕7号", "", BODY],
     "关于举办2026年城管青年读书会的通知"),  # the title above the 文号
    (["共青团上海市城市管理行政执法局工作委员会", "签发人：张三", "关于开展2026年",
      "青年志愿服务月活动的通知", "各团组织：", BODY], "关于开展2026年青年志愿服务月活动的通知"),
])
def test_the_title_is_the_notices_own_not_the_issuers_header(lines, title):
    assert ingest.parse("\n".join(lines), "n.txt").title == title


def test_a_pdf_title_is_the_notice_not_the_header(tmp_path):
    path = write_pdf(tmp_path / "n.pdf", ["上海市城市管理行政执法局工会委员会", TITLE, BODY])
    assert ingest.parse(ingest.read_text(path), "n.pdf").title == TITLE


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds not present")
def test_the_seed_notices_get_their_own_titles():
    titles = {s["file"]: s["title"] for s in yaml.safe_load(
        (DATA_DIR / "sources.yaml").read_text(encoding="utf-8")).values()}
    for path in sorted(SEEDS.glob("0*.txt")):
        doc = ingest.parse(ingest.read_text(path), path.name)
        assert titles[path.name].endswith(doc.title), (path.name, doc.title)
        assert not doc.title.endswith(("文件", "委员会", "(通知)"))


def test_a_broken_or_textless_pdf_is_refused_in_words(db, rt, tmp_path):
    broken = tmp_path / "坏.pdf"
    broken.write_bytes(b"%PDF-1.4\n" + b"\x00" * 200)
    with pytest.raises(IngestError, match="无法读取 PDF"):
        ingest_file(db, broken, rt.clock.now())
    blank = write_pdf(tmp_path / "空.pdf", [" "])
    with pytest.raises(IngestError, match="没有文字层"):
        ingest_file(db, blank, rt.clock.now())


# --- caps ----------------------------------------------------------------------------------------

def zip_bomb(path, unpacked: int):
    """A .docx-shaped zip, small on disk, whose document.xml unpacks to `unpacked` bytes."""
    chunk = b"<w:p><w:r><w:t>" + "长".encode() * 4000 + b"</w:t></w:r></w:p>"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            written = 0
            while written < unpacked:
                part.write(chunk)
                written += len(chunk)
    return path


def test_a_docx_that_unpacks_too_big_is_refused_before_unpacking(db, rt, tmp_path):
    bomb = zip_bomb(tmp_path / "炸弹.docx", ingest.MAX_UNPACKED_BYTES + 1024 * 1024)
    assert bomb.stat().st_size < 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(IngestError, match="解压后过大"):
            ingest_file(db, bomb, rt.clock.now())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024  # nothing was unpacked
    assert kb_store.documents(db) == []


def test_a_document_with_too_many_passages_is_refused_and_nothing_stored(db, rt, tmp_path):
    sentence = "第{}条：各基层工会要按照年度计划认真组织职工参加文体活动，做好报名、统计和安全保障工作，" \
               "活动结束后及时总结经验并报送局工会办公室备案，确保每一项活动都有记录可查。\n"
    huge = tmp_path / "长文件.txt"
    huge.write_text("".join(sentence.format(n) for n in range(ingest.MAX_PASSAGES + 5)),
                    encoding="utf-8")
    version = kb_store.version(db)
    with pytest.raises(IngestError, match=f"最多 {ingest.MAX_PASSAGES} 段"):
        ingest_file(db, huge, rt.clock.now())
    assert kb_store.documents(db) == [] and kb_store.version(db) == version


def test_a_long_document_is_stored_in_batches_with_one_version_bump(db, rt, tmp_path):
    count = kb_store.INSERT_BATCH * 2 + 7
    long_doc = tmp_path / "长.txt"
    long_doc.write_text("关于印发《工会活动细则》的通知\n\n" + "".join(
        f"第{n}条：各基层工会要按照年度计划认真组织职工参加文体活动，做好报名、统计和安全保障工作，"
        f"活动结束后及时总结经验并报送局工会办公室备案，确保每一项活动都有记录可查。\n"
        for n in range(count)), encoding="utf-8")
    version = kb_store.version(db)
    doc = ingest_file(db, long_doc, rt.clock.now())
    assert len(doc.passages) == count
    assert kb_store.documents(db)[0]["passages"] == count
    assert [p["seq"] for p in kb_store.passages(db)] == list(range(1, count + 1))
    assert kb_store.version(db) == version + 1  # one rebuild for the whole document
    ingest_file(db, long_doc, rt.clock.now())  # again: replaced, not doubled, one more bump
    assert kb_store.documents(db)[0]["passages"] == count and kb_store.version(db) == version + 2


def test_each_file_of_one_ingest_command_is_one_change(settings, rt, db, tmp_path, notice_pdf):
    other = tmp_path / "b.md"
    other.write_text("# 关于举办2026年城管青年读书会的通知\n\n" + BODY, encoding="utf-8")
    version = kb_store.version(db)
    result = CliRunner().invoke(cli, ["ingest", str(notice_pdf), str(other)], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert kb_store.version(db) == version + 2


def test_a_file_too_big_to_read_is_refused(db, rt, tmp_path):
    big = tmp_path / "大.txt"
    with big.open("wb") as out:
        out.truncate(ingest.MAX_FILE_BYTES + 1)
    with pytest.raises(IngestError, match="文件过大"):
        ingest_file(db, big, rt.clock.now())
