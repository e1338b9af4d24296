"""An activity's sign-up list as CSV or XLSX (openpyxl); phone numbers masked unless revealed."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

FORMATS = ("csv", "xlsx")


def to_csv(header: list[str], rows: list[list]) -> str:
    """CSV text; write it with a UTF-8 BOM (encoding='utf-8-sig') so Excel reads the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def to_xlsx(header: list[str], rows: list[list], path: str | Path, *, title: str = "报名名单",
            caption: str | None = None) -> Path:
    """Write one sheet: an optional caption line, a bold header row, the rows. Returns the path."""
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    if caption:
        sheet.append([caption])
        sheet.cell(row=1, column=1).font = Font(bold=True)
    sheet.append(header)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    for n, name in enumerate(header, 1):
        width = max([len(str(name))] + [len(str(r[n - 1])) for r in rows]) * 2 + 2
        sheet.column_dimensions[get_column_letter(n)].width = min(40, max(8, width))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
