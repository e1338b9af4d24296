"""志愿服务记录证明 as a PDF: who, each activity with its organiser, date and hours, every
correction, the total, a certificate number and date (民政部令第67号: 谁记录谁证明).

Each issue is a numbered row in `certificates` and a line in the audit log, written in the same
transaction as the number is drawn. Chinese is set in reportlab's built-in CID font STSong-Light,
so no font file is needed.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from activities.service import ActivityError, fmt_hours, volunteer_record
from clock import fmt_iso_local, from_db
from privacy import mask_openid
from storage import activities as store
from storage import audit
from storage.db import immediate

FONT = "STSong-Light"
TITLE = "志愿服务记录证明"
BASIS = ("本证明依据《志愿服务记录与证明出具办法（试行）》（民政部令第67号）出具：时长来自活动签到记录，"
         "更正均记录更正人、时间和原因。")
ISSUER = "诚城青年助手"
AUDIT_ACTION = "出具志愿服务记录证明"


class CertificateError(ActivityError):
    """A certificate that cannot be issued (no name on record, nothing to certify)."""


@dataclass
class Certificate:
    number: str
    pdf: bytes
    total_hours: float
    activities: int


def number_of(row_id: int, issued: datetime) -> str:
    return f"CC{issued.year}-{row_id:05d}"


def issue(db: Database, openid: str, now: datetime, tz: ZoneInfo, actor: str) -> Certificate:
    """Number, record (certificates + audit) and render one certificate for a member.
    Raises SignupNotFound (no such member) or CertificateError."""
    record = volunteer_record(db, openid)
    member = record["member"]
    if not (member.get("name") and member.get("unit")):
        raise CertificateError("这位成员还没有登记姓名和单位，不能出具证明（请成员回复“绑定 姓名 单位”）")
    if not record["records"]:
        raise CertificateError("这位成员暂无志愿服务记录，不能出具证明")
    local = now.astimezone(tz)
    with immediate(db):
        number = store.insert_certificate(db, openid, record["count"], record["total_hours"],
                                          actor, now, lambda rid: number_of(rid, local))
        audit.record(db, actor, AUDIT_ACTION, number,
                     f"成员 {mask_openid(openid)}，{record['count']} 次活动，"
                     f"{fmt_hours(record['total_hours'])} 小时", now)
        pdf = render(record, number, local, tz)
    return Certificate(number, pdf, record["total_hours"], record["count"])


def render(record: dict, number: str, issued: datetime, tz: ZoneInfo) -> bytes:
    """The certificate as PDF bytes (A4)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    body = ParagraphStyle("body", fontName=FONT, fontSize=11, leading=17)
    small = ParagraphStyle("small", parent=body, fontSize=9, leading=13)
    title = ParagraphStyle("title", parent=body, fontSize=20, leading=28, alignment=1)
    cell = ParagraphStyle("cell", parent=body, fontSize=10, leading=13)
    member = record["member"]
    total = fmt_hours(record["total_hours"])

    rows = [["序号", "服务日期", "活动名称", "组织者", "时长（小时）"]]
    fixes = []
    for n, r in enumerate(record["records"], 1):
        day = fmt_iso_local(from_db(r["start_at"]), tz)[:10] or "—"
        rows.append([str(n), day, Paragraph(_esc(r["title"]), cell),
                     Paragraph(_esc(r["organiser"] or "—"), cell),
                     fmt_hours(r["credited_hours"])])
        for c in r["corrections"]:
            fixes.append(f"第 {n} 项：{fmt_iso_local(from_db(c['at']), tz)} 由 {c['actor']} 将 "
                         f"{fmt_hours(c['old_hours']) if c['old_hours'] is not None else '未记'} 小时"
                         f"改为 {fmt_hours(c['new_hours'])} 小时，原因：{c['reason']}")
    rows.append(["", "", "合计", f"{record['count']} 次活动", total])
    table = Table(rows, colWidths=[12 * mm, 26 * mm, 70 * mm, 44 * mm, 24 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 10),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8f3ee")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (4, 0), (4, -1), "RIGHT")]))

    story = [Paragraph(TITLE, title), Spacer(1, 4 * mm),
             Paragraph(f"证明编号：{number}", small), Spacer(1, 4 * mm),
             Paragraph(f"兹证明 {_esc(member['name'])}（单位：{_esc(member['unit'])}）参加了下列志愿服务活动，"
                       f"累计志愿服务时长 {total} 小时。", body), Spacer(1, 4 * mm), table]
    if fixes:
        story += [Spacer(1, 4 * mm), Paragraph("更正记录：", body)]
        story += [Paragraph(_esc(line), small) for line in fixes]
    story += [Spacer(1, 6 * mm), Paragraph(BASIS, small), Spacer(1, 8 * mm),
              Paragraph(f"出具：{ISSUER}", body),
              Paragraph(f"出具日期：{issued.year}年{issued.month}月{issued.day}日", body)]
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title=f"{TITLE} {number}", author=ISSUER,
                      leftMargin=16 * mm, rightMargin=16 * mm).build(story)
    return buffer.getvalue()


def _esc(text: str) -> str:
    """Paragraph text is mini-HTML: names and titles typed by people must not be markup."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
